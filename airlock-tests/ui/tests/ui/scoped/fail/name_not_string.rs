#[airlock::scoped(name = 5)]
fn checkout() -> airlock::Result<()> {
    Ok(())
}

fn main() {}
