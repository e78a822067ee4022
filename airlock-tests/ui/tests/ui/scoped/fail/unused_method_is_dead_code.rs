#![deny(dead_code)]

// An unused #[scoped] method must still be reported as dead code.
struct Cart;

impl Cart {
    #[airlock::scoped]
    fn checkout(&mut self) -> airlock::Result<()> {
        Ok(())
    }
}

fn main() {
    let _ = Cart;
}
