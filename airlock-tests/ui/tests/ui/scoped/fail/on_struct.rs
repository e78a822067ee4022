#[airlock::scoped]
struct Checkout;

fn main() {}
