// A sync task returning `()`: enqueued in a scope, it runs once the scope flushes.
use std::sync::atomic::{AtomicU64, Ordering};

static SHIPPED: AtomicU64 = AtomicU64::new(0);

#[airlock::task]
fn ship(order_id: u64, quantity: u32) {
    SHIPPED.fetch_add(order_id * u64::from(quantity), Ordering::SeqCst);
}

fn main() {
    let result: airlock::Result<()> = airlock::scope(|| {
        ship::enqueue(7, 3)?;
        assert_eq!(SHIPPED.load(Ordering::SeqCst), 0, "buffered until the scope flushes");
        Ok(())
    });
    result.unwrap();
    assert_eq!(SHIPPED.load(Ordering::SeqCst), 21);

    // The function itself stays callable.
    ship(1, 1);
    assert_eq!(SHIPPED.load(Ordering::SeqCst), 22);

    // Outside a scope, enqueue fails instead of silently dispatching.
    assert!(matches!(ship::enqueue(1, 1), Err(airlock::Error::NoScope { .. })));

    assert_eq!(ship::TASK.name(), "ship");
    assert_eq!(ship::TASK.kind(), airlock::TaskKind::Sync);
    assert!(std::ptr::eq(airlock::registry().get("ship").unwrap(), ship::TASK));
}
