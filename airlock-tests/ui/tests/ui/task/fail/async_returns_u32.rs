#[airlock::task]
async fn ship(order_id: u64) -> u32 {
    let _ = order_id;
    0
}

fn main() {}
