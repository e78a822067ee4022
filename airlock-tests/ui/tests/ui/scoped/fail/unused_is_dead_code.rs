#![deny(dead_code)]

// An unused #[scoped] fn must still be reported as dead code.
#[airlock::scoped]
fn checkout() -> airlock::Result<()> {
    Ok(())
}

fn main() {}
