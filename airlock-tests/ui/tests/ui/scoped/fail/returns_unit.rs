#[airlock::scoped]
fn checkout() {}

fn main() {}
