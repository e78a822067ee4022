// `name = "..."` with dots (and the other allowed characters) is the registry name;
// the Rust path stays the fn's.
#[airlock::task(name = "orders.ship.v2")]
fn ship(order_id: u64) {
    let _ = order_id;
}

#[airlock::task(name = "billing/charge:card-v1_b")]
async fn charge(order_id: u64) {
    let _ = order_id;
}

fn main() {
    assert_eq!(ship::TASK.name(), "orders.ship.v2");
    assert_eq!(charge::TASK.name(), "billing/charge:card-v1_b");
    assert!(ship::TASK.fn_path().ends_with("::ship"), "{}", ship::TASK.fn_path());
    assert!(std::ptr::eq(airlock::registry().get("orders.ship.v2").unwrap(), ship::TASK));
    assert!(airlock::registry().get("ship").is_err(), "registered only under its name");
    assert!(airlock::registry().get("billing/charge:card-v1_b").is_ok());

    let captured = airlock::testing::capture(|| ship::enqueue(9));
    captured.value.as_ref().unwrap();
    captured.assert_names(&["orders.ship.v2"]);
    assert_eq!(captured.intents[0].to_string(), "orders.ship.v2(9)");
}
