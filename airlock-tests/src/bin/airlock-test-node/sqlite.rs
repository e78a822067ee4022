//! Roles on the embedded SQLite queue.
//!
//! * `worker <database-url> <name> [workers]`: runs supervised workers on the
//!   queue until killed.
//! * `produce <database-url> <after-commit|co-commit> <key>`: in one
//!   transaction scope, inserts an order and enqueues `log_execution(key)`,
//!   commits, prints `committed`, then hangs before anything else happens
//!   (after-commit: inside the dispatch, before the push) so the test can kill
//!   the process exactly between commit and dispatch.

use airlock::executor::BoxFuture;
use airlock::queue::SqliteQueue;
use airlock::worker::WorkerOptions;
use airlock::{DispatchError, Executor, Intent, Scope};
use airlock_tests::log_execution;
use anyhow::Context;

pub(crate) async fn main(args: Vec<String>) -> anyhow::Result<()> {
    let role = args.first().map(String::as_str);
    let url = args.get(1).context("missing <database-url>")?;
    let queue = SqliteQueue::connect(url)
        .await
        .map_err(|e| anyhow::anyhow!("opening {url}: {e}"))?;
    match role {
        Some("worker") => {
            let name = args.get(2).context("worker: missing <name>")?;
            let workers = args.get(3).map_or(Ok(1), |n| n.parse())?;
            let options = WorkerOptions::new(name.clone())
                .workers(workers)
                .poll_interval(std::time::Duration::from_millis(20));
            println!("ready");
            queue.monitor(options).run().await?;
            Ok(())
        }
        Some("produce") => {
            let mode = args.get(2).context("produce: missing <mode>")?;
            let key = args.get(3).context("produce: missing <key>")?.clone();
            produce(queue, mode, key).await
        }
        other => anyhow::bail!("sqlite: unknown role {other:?} (expected worker or produce)"),
    }
}

async fn produce(queue: SqliteQueue, mode: &str, key: String) -> anyhow::Result<()> {
    let pool = queue.pool().clone();
    sqlx::query("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, key TEXT)")
        .execute(&pool)
        .await?;
    let tx = pool.begin().await?;
    let scope = Scope::new().name("produce");
    let tx = match mode {
        "after-commit" => scope.executor(HangBeforePush(queue)).after_commit(tx),
        "co-commit" => scope.co_commit(tx),
        other => anyhow::bail!("produce: unknown mode {other:?}"),
    };
    tx.run(|tx| {
        Box::pin(async move {
            sqlx::query("INSERT INTO orders (key) VALUES (?)")
                .bind(&key)
                .execute(&mut **tx)
                .await?;
            log_execution::enqueue(key)?;
            Ok::<_, anyhow::Error>(())
        })
    })
    .await?;
    // Co-commit: committed and queued. The rest of the "request" never ends.
    println!("committed");
    std::future::pending::<()>().await;
    Ok(())
}

/// Announces that the transaction committed, then never pushes: the moment
/// an after-commit process can die between its commit and its dispatch.
#[derive(Debug)]
struct HangBeforePush(SqliteQueue);

impl Executor for HangBeforePush {
    fn dispatch(&self, intents: Vec<Intent>) -> Result<(), DispatchError> {
        self.0.dispatch(intents)
    }

    fn dispatch_async(&self, _intents: Vec<Intent>) -> BoxFuture<'_, Result<(), DispatchError>> {
        Box::pin(async {
            println!("committed");
            std::future::pending().await
        })
    }
}
