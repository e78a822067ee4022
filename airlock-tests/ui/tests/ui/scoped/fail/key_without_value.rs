#[airlock::scoped(policy)]
fn checkout() -> airlock::Result<()> {
    Ok(())
}

fn main() {}
