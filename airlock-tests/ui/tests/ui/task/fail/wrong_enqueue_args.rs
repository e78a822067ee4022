#[airlock::task]
fn ship(order_id: u64) {
    let _ = order_id;
}

fn main() {
    let _ = ship::enqueue("not a number");
}
