#[airlock::scoped]
const fn checkout() -> airlock::Result<()> {
    Ok(())
}

fn main() {}
