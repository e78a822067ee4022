//! The airlock quickstart: the same domain code, run under different scopes,
//! dispatching through an embedded apalis SQLite queue that a worker in the
//! same process then drains.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p airlock-examples --example quickstart
//! ```
//!
//! and again with a task blocked from the environment:
//!
//! ```text
//! AIRLOCK_BLOCK_TASKS=send_confirmation_email cargo run -p airlock-examples --example quickstart
//! ```

use std::time::Duration;

use airlock::queue::SqliteQueue;
use airlock::worker::WorkerOptions;
use airlock::{Config, DropAll, Scope, Settings};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------- the tasks

/// A side effect: in a real service this talks to a mail provider.
#[airlock::task]
fn send_confirmation_email(order_id: u64) -> Result<(), std::io::Error> {
    println!("    [worker] email: order {order_id} confirmed");
    Ok(())
}

/// An async side effect with an explicit, stable name.
#[airlock::task(name = "warehouse.notify")]
async fn notify_warehouse(order_id: u64, lines: Vec<Line>) -> anyhow::Result<()> {
    tokio::task::yield_now().await;
    println!(
        "    [worker] warehouse: ship {} line(s) of order {order_id}",
        lines.len()
    );
    Ok(())
}

// ---------------------------------------------------------------- the domain

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Line {
    sku: String,
    quantity: u32,
}

#[derive(Debug, PartialEq)]
enum Status {
    New,
    Processed,
}

#[derive(Debug)]
struct Order {
    id: u64,
    lines: Vec<Line>,
    status: Status,
}

#[derive(Debug, thiserror::Error)]
enum CheckoutError {
    #[error("order {0} has no lines")]
    Empty(u64),
    #[error(transparent)]
    Airlock(#[from] airlock::Error),
}

impl Order {
    fn new(id: u64, skus: &[&str]) -> Self {
        let lines = skus
            .iter()
            .map(|sku| Line {
                sku: (*sku).to_owned(),
                quantity: 1,
            })
            .collect();
        Order {
            id,
            lines,
            status: Status::New,
        }
    }

    /// Domain code says what should happen; it does not decide when.
    fn process(&mut self) -> Result<(), CheckoutError> {
        self.status = Status::Processed;
        send_confirmation_email::enqueue(self.id)?;
        notify_warehouse::intent(self.id, self.lines.clone())
            .delay(Duration::from_secs(1))
            .queue("warehouse")
            .enqueue()?;
        if self.lines.is_empty() {
            return Err(CheckoutError::Empty(self.id));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- the scopes

/// A request: flush on `Ok`, discard on `Err`.
#[airlock::scoped]
async fn checkout(mut order: Order) -> Result<Order, CheckoutError> {
    order.process()?;
    let scope = airlock::current().expect("#[scoped] makes a scope current");
    println!(
        "    buffered, nothing sent yet: {:?}",
        scope.intents().names()
    );
    Ok(order)
}

/// A backfill run as a dry run: everything is enqueued, nothing escapes.
#[airlock::scoped(policy = DropAll)]
async fn backfill(orders: Vec<Order>) -> Result<usize, CheckoutError> {
    let mut count = 0;
    for mut order in orders {
        order.process()?;
        count += 1;
    }
    Ok(count)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The embedded queue: a SQLite file, no server. Every scope below that
    // flushes writes its intents into it as jobs.
    let path = std::env::temp_dir().join(format!("airlock-quickstart-{}.db", std::process::id()));
    let queue = SqliteQueue::connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .map_err(|e| anyhow::anyhow!("opening the queue: {e}"))?;
    let result = run(&queue).await;
    queue.pool().close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    result
}

async fn run(queue: &SqliteQueue) -> anyhow::Result<()> {
    // Defaults for every scope from the environment (AIRLOCK_BLOCK_TASKS, ...),
    // and the queue as the executor. A misspelt task name fails here, with the
    // closest registered names.
    airlock::configure(Config::from_env()?.executor(queue.clone()))?;

    println!("1. Outside any scope, enqueue is an error, never a silent dispatch:");
    let mut stray = Order::new(1, &["mug"]);
    println!("    {}", stray.process().expect_err("no scope"));

    println!("\n2. A successful checkout flushes after the handler returns:");
    let order = checkout(Order::new(2, &["mug", "tea"])).await?;
    assert_eq!(order.status, Status::Processed);
    println!("    queued jobs: {}", pending(queue).await?);

    println!("\n3. A failing checkout discards what it enqueued before failing:");
    match checkout(Order::new(3, &[])).await {
        Err(error) => println!("    checkout failed ({error}); nothing was sent"),
        Ok(_) => unreachable!("an empty order fails"),
    }

    println!("\n4. The same code under DropAll is a dry run:");
    let n = backfill(vec![Order::new(4, &["mug"]), Order::new(5, &["tea"])]).await?;
    println!("    processed {n} orders; nothing was sent");

    println!("\n5. BlockTasks from an environment variable (AIRLOCK_BLOCK_TASKS):");
    let settings = match std::env::var("AIRLOCK_BLOCK_TASKS") {
        Ok(_) => Settings::from_env()?,
        // Not set: show what `AIRLOCK_BLOCK_TASKS=send_confirmation_email` does.
        Err(_) => Settings::from_lookup(|key| {
            (key == "AIRLOCK_BLOCK_TASKS").then(|| "send_confirmation_email".to_owned())
        })?,
    };
    println!("    blocking {:?}", settings.block_tasks);
    let scope = with_settings_policies(Scope::new().name("admin request"), &settings)?.start();
    scope
        .handle()
        .bind(async { Order::new(6, &["mug"]).process() })
        .await?;
    let report = scope.flush_async().await?;
    println!(
        "    dispatched {:?}, dropped {:?}",
        report.dispatched(),
        report.dropped()
    );

    println!("\n6. Nested scopes: the inner one hands its intents to the outer one:");
    let outer = Scope::new().name("request").start();
    outer
        .handle()
        .bind(async {
            let inner = Scope::new().name("payment library").start();
            inner.in_scope(|| send_confirmation_email::enqueue(7))?;
            let inner_report = inner.flush()?;
            println!(
                "    inner scope ended: captured {:?}, sent nothing",
                inner_report.captured()
            );
            Ok::<(), airlock::Error>(())
        })
        .await?;
    println!(
        "    the outer scope now holds {:?}",
        outer.intents().names()
    );
    let report = outer.flush_async().await?;
    println!(
        "    outer scope flushed: dispatched {:?}",
        report.dispatched()
    );

    println!("\n7. A database transaction: the order row and its jobs commit together:");
    let pool = queue.pool();
    sqlx::query("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, lines INTEGER)")
        .execute(pool)
        .await?;
    for (id, skus) in [(8, vec!["mug"]), (9, vec![])] {
        // Co-commit: on commit the jobs are written into this same transaction.
        let result = airlock::tx::co_commit(pool.begin().await?)
            .run(move |tx| {
                Box::pin(async move {
                    let mut order = Order::new(id, &skus);
                    sqlx::query("INSERT INTO orders (id, lines) VALUES (?, ?)")
                        .bind(id as i64)
                        .bind(order.lines.len() as i64)
                        .execute(&mut **tx)
                        .await?;
                    order.process()?;
                    Ok::<_, anyhow::Error>(())
                })
            })
            .await;
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE id = ?")
            .bind(id as i64)
            .fetch_one(pool)
            .await?;
        match result {
            Ok(()) => println!("    order {id}: committed ({rows} row) with its jobs"),
            Err(error) => println!("    order {id}: {error}; rolled back ({rows} rows), no jobs"),
        }
    }
    println!("    queued jobs: {}", pending(queue).await?);

    println!("\n8. A worker drains the queue (here in the same process):");
    let workers = [queue.monitor(WorkerOptions::new("quickstart")), {
        queue.monitor(WorkerOptions::new("quickstart-warehouse").queue("warehouse"))
    }];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let drained = async {
        while pending(queue).await.unwrap_or(0) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    };
    let [email_workers, warehouse_workers] = workers;
    let stop = std::sync::Arc::new(tokio::sync::Notify::new());
    let stopped = stop.clone();
    let warehouse = tokio::spawn(warehouse_workers.run_with_signal(async move {
        stopped.notified().await;
        Ok(())
    }));
    email_workers.run_with_signal(drained).await?;
    stop.notify_one();
    warehouse.await??;
    let left = pending(queue).await?;
    println!("    done; jobs left: {left}");
    anyhow::ensure!(left == 0, "the worker did not drain the queue");
    Ok(())
}

/// Jobs not finished yet.
async fn pending(queue: &SqliteQueue) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM Jobs WHERE status NOT IN ('Done', 'Killed')")
            .fetch_one(queue.pool())
            .await?,
    )
}

/// Puts the policies the settings describe on one scope.
fn with_settings_policies(mut scope: Scope, settings: &Settings) -> airlock::Result<Scope> {
    for policy in Config::new().with_settings(settings)?.policies() {
        scope = scope.shared_policy(policy.clone());
    }
    Ok(scope)
}
