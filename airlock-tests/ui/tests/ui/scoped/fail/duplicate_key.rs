#[airlock::scoped(policy = airlock::DropAll, policy = airlock::AllowAll)]
fn checkout() -> airlock::Result<()> {
    Ok(())
}

fn main() {}
