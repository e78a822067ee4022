// A type error in the body is reported as in the undecorated fn, once.
#[airlock::scoped]
async fn checkout() -> airlock::Result<u32> {
    Ok("not a number")
}

fn main() {}
