#[airlock::task]
fn ship((order_id, quantity): (u64, u32)) {
    let _ = (order_id, quantity);
}

fn main() {}
