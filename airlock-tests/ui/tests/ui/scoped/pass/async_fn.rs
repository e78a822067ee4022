// An async #[scoped] fn: the scope travels with the future; `?` and early `return` work.
use std::sync::atomic::{AtomicU64, Ordering};

static SHIPPED: AtomicU64 = AtomicU64::new(0);

#[airlock::task]
async fn ship(order_id: u64) {
    tokio::task::yield_now().await;
    SHIPPED.fetch_add(order_id, Ordering::SeqCst);
}

#[airlock::scoped]
async fn checkout(order_id: u64) -> anyhow::Result<u64> {
    ship::enqueue(order_id)?;
    tokio::task::yield_now().await;
    if order_id == 1 {
        return Ok(1);
    }
    anyhow::ensure!(order_id < 100, "too big");
    let parsed: u64 = "12".parse()?;
    assert!(airlock::current().is_some());
    Ok(parsed)
}

#[airlock::scoped]
async fn borrowed(name: &str) -> airlock::Result<usize> {
    tokio::task::yield_now().await;
    Ok(name.len())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(checkout(10).await.unwrap(), 12);
    assert_eq!(SHIPPED.load(Ordering::SeqCst), 10);
    assert_eq!(checkout(1).await.unwrap(), 1);
    assert_eq!(SHIPPED.load(Ordering::SeqCst), 11);
    assert_eq!(checkout(500).await.unwrap_err().to_string(), "too big");
    assert_eq!(SHIPPED.load(Ordering::SeqCst), 11, "discarded on Err");
    let name = String::from("four");
    assert_eq!(borrowed(&name).await.unwrap(), 4);
    assert!(airlock::current().is_none());
}
