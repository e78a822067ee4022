#[airlock::scoped(policy = 5)]
fn checkout() -> airlock::Result<()> {
    Ok(())
}

fn main() {}
