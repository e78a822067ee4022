// A syntax error in an async body is reported once, by the compiler, where it is.
#[airlock::scoped]
async fn checkout(order_id: u64) -> airlock::Result<u64> {
    let total = match order_id { 0 => 1 2 => 3, _ => order_id };
    Ok(total)
}

fn main() {
    let _ = checkout(1);
}
