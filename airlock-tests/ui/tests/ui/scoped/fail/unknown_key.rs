#[airlock::scoped(polcy = airlock::DropAll)]
fn checkout() -> airlock::Result<()> {
    Ok(())
}

fn main() {}
