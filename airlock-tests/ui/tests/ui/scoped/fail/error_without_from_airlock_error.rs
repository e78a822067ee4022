#[derive(Debug)]
struct CheckoutError;

#[airlock::scoped]
fn checkout() -> Result<u32, CheckoutError> {
    Ok(0)
}

fn main() {}
