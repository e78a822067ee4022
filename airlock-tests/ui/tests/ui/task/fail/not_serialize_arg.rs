struct Order {
    id: u64,
}

#[airlock::task]
fn ship(order: Order) {
    let _ = order.id;
}

fn main() {}
