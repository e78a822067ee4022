#[airlock::task(name)]
fn ship(order_id: u64) {
    let _ = order_id;
}

fn main() {}
