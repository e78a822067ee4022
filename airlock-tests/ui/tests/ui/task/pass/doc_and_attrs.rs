// Doc comments and other attributes on the fn are kept on it; the fn keeps working.
#![deny(missing_docs, unused)]
//! A crate whose tasks are documented.

/// Ships an order.
#[airlock::task]
#[inline]
#[must_use = "ignoring a shipment is a bug"]
pub fn ship(order_id: u64) -> Result<u64, std::io::Error> {
    Ok(order_id)
}

/// Ships an order, asynchronously.
#[airlock::task]
#[allow(clippy::unused_async)]
pub async fn ship_async(#[allow(unused_variables)] order_id: u64) {}

fn main() {
    assert_eq!(ship(3).unwrap(), 3);
    let captured = airlock::testing::capture(|| ship_async::enqueue(1));
    captured.value.as_ref().unwrap();
    captured.assert_names(&["ship_async"]);
}
