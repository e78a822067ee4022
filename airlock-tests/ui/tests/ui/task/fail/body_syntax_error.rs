// A syntax error in the body is reported once, by the compiler, where it is;
// the task and its handle are still generated.
#[airlock::task]
fn ship(order_id: u64) {
    let label = format!("order {order_id}")
    println!("{label}");
}

fn main() {
    let _ = ship::enqueue(1);
}
