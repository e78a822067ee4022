#![deny(dead_code)]

// An unused async #[scoped] fn must still be reported as dead code.
#[airlock::scoped]
async fn checkout() -> airlock::Result<()> {
    Ok(())
}

fn main() {}
