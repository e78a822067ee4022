#[airlock::task(name = "a", name = "b")]
fn ship(order_id: u64) {
    let _ = order_id;
}

fn main() {}
