// `with`, `serialize_with`, `default = "path"`, ... name concrete types, which
// the generated (generic) arguments struct cannot use: rejected on the key.
#[airlock::task]
fn ship(order_id: u64, #[serde(with = "custom")] weight: u32) {
    let _ = (order_id, weight);
}

fn main() {}
