// Each repetition of a key is reported on itself; the first use stands.
#[airlock::scoped(name = "a", policy = airlock::DropAll, name = "b", name = "c")]
fn checkout() -> airlock::Result<()> {
    Ok(())
}

fn main() {}
