//! The airlock quickstart: the same domain code, run under different scopes.
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

use airlock::{Config, DropAll, Scope, Settings};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------- the tasks

/// A side effect: in a real service this talks to a mail provider.
#[airlock::task]
fn send_confirmation_email(order_id: u64) -> Result<(), std::io::Error> {
    println!("    -> email: order {order_id} confirmed");
    Ok(())
}

/// An async side effect with an explicit, stable name.
#[airlock::task(name = "warehouse.notify")]
async fn notify_warehouse(order_id: u64, lines: Vec<Line>) -> anyhow::Result<()> {
    tokio::task::yield_now().await;
    println!(
        "    -> warehouse: ship {} line(s) of order {order_id}",
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
            .delay(Duration::from_secs(60))
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

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    // Defaults for every scope from the environment (AIRLOCK_BLOCK_TASKS, ...).
    // A misspelt task name fails here, with the closest registered names.
    airlock::configure(Config::from_env()?)?;

    println!("1. Outside any scope, enqueue is an error, never a silent dispatch:");
    let mut stray = Order::new(1, &["mug"]);
    println!("    {}", stray.process().expect_err("no scope"));

    println!("\n2. A successful checkout flushes after the handler returns:");
    let order = checkout(Order::new(2, &["mug", "tea"])).await?;
    assert_eq!(order.status, Status::Processed);

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
    Ok(())
}

/// Puts the policies the settings describe on one scope.
fn with_settings_policies(mut scope: Scope, settings: &Settings) -> airlock::Result<Scope> {
    for policy in Config::new().with_settings(settings)?.policies() {
        scope = scope.shared_policy(policy.clone());
    }
    Ok(scope)
}
