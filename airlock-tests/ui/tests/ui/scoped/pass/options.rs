// Every option: policy, executor, behavior, name; expressions are evaluated per call.
use std::sync::atomic::{AtomicU64, Ordering};

static SHIPPED: AtomicU64 = AtomicU64::new(0);

#[airlock::task]
fn ship(order_id: u64) {
    SHIPPED.fetch_add(order_id, Ordering::SeqCst);
}

#[airlock::scoped(policy = airlock::DropAll)]
fn dry_run(order_id: u64) -> airlock::Result<()> {
    ship::enqueue(order_id)?;
    Ok(())
}

#[airlock::scoped(policy = airlock::BlockTasks::of(&[ship::TASK]), name = "blocked")]
fn blocked(order_id: u64) -> airlock::Result<String> {
    ship::enqueue(order_id)?;
    Ok(airlock::current().unwrap().info().to_string())
}

#[airlock::scoped(
    executor = airlock::InProcess::default(),
    behavior = airlock::AlwaysFlush,
    name = "always",
)]
fn always(order_id: u64) -> anyhow::Result<()> {
    ship::enqueue(order_id)?;
    anyhow::bail!("failed, but AlwaysFlush flushes anyway")
}

#[airlock::scoped(policy = airlock::Policies::new().with(airlock::AllowAll).with(airlock::DropAll))]
async fn dry_run_async(order_id: u64) -> airlock::Result<()> {
    ship::enqueue(order_id)?;
    Ok(())
}

fn main() {
    dry_run(1).unwrap();
    assert_eq!(SHIPPED.load(Ordering::SeqCst), 0, "DropAll dropped it");

    let info = blocked(2).unwrap();
    assert!(info.starts_with("scope `blocked`"), "{info}");
    assert_eq!(SHIPPED.load(Ordering::SeqCst), 0, "BlockTasks blocked it");

    assert!(always(4).is_err());
    assert_eq!(SHIPPED.load(Ordering::SeqCst), 4, "AlwaysFlush flushed on Err");

    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(dry_run_async(8)).unwrap();
    assert_eq!(SHIPPED.load(Ordering::SeqCst), 4);
}
