#[airlock::scoped]
fn checkout() -> u32 {
    0
}

fn main() {}
