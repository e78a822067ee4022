#[airlock::task]
struct Ship {
    order_id: u64,
}

fn main() {}
