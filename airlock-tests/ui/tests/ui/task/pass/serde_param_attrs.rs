// `#[serde(..)]` on a parameter applies to its field of the serialized arguments.
#[airlock::task]
fn ship(
    order_id: u64,
    #[serde(default)] priority: u8,
    #[serde(rename = "qty", default)] quantity: u32,
) {
    let _ = (order_id, priority, quantity);
}

fn main() {
    // Missing defaulted fields decode to their defaults.
    let args = ship::TASK.decode_args(serde_json::json!({ "order_id": 4 })).unwrap();
    let intent = <airlock::Intent as airlock::executor::IntentParts>::from_decoded(ship::TASK, args);
    let decoded = intent.args::<ship>().unwrap();
    assert_eq!((decoded.order_id, decoded.priority, decoded.quantity), (4, 0, 0));

    // A field without a default is still required.
    assert!(ship::TASK.decode_args(serde_json::json!({ "priority": 1 })).is_err());

    // The rename applies when encoding.
    let captured = airlock::testing::capture(|| ship::enqueue(4, 2, 3));
    captured.value.as_ref().unwrap();
    let json = captured.intents[0].args_json().unwrap();
    assert_eq!(json, serde_json::json!({ "order_id": 4, "priority": 2, "qty": 3 }));
}
