// `?` on an error that does not convert is reported as in the undecorated fn, once.
#[derive(Debug)]
struct Other;

#[derive(Debug)]
struct CheckoutError;

impl From<airlock::Error> for CheckoutError {
    fn from(_: airlock::Error) -> Self {
        CheckoutError
    }
}

#[airlock::scoped]
fn checkout() -> Result<u32, CheckoutError> {
    let value: Result<u32, Other> = Err(Other);
    let value = value?;
    Ok(value)
}

fn main() {}
