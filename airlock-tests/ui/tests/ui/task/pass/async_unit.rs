// An async task: awaited by the executor when an async scope flushes.
use std::sync::atomic::{AtomicU64, Ordering};

static SHIPPED: AtomicU64 = AtomicU64::new(0);

#[airlock::task]
async fn ship(order_id: u64) {
    tokio::task::yield_now().await;
    SHIPPED.fetch_add(order_id, Ordering::SeqCst);
}

#[airlock::task]
async fn ship_checked(order_id: u64) -> Result<(), std::io::Error> {
    tokio::task::yield_now().await;
    SHIPPED.fetch_add(order_id * 100, Ordering::SeqCst);
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let result: airlock::Result<()> = airlock::scope_async(async {
        ship::enqueue(5)?;
        ship_checked::enqueue(1)?;
        tokio::task::yield_now().await;
        assert_eq!(SHIPPED.load(Ordering::SeqCst), 0);
        Ok(())
    })
    .await;
    result.unwrap();
    assert_eq!(SHIPPED.load(Ordering::SeqCst), 105);
    assert_eq!(ship::TASK.kind(), airlock::TaskKind::Async);

    // Still an ordinary async fn.
    ship(1000).await;
    assert_eq!(SHIPPED.load(Ordering::SeqCst), 1105);
}
