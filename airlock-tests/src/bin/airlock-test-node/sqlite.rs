//! Roles on the embedded SQLite queue.
//!
//! * `worker <database-url> <name> [workers] [queue] [heartbeat-secs]
//!   [missed-heartbeats]`: runs supervised workers on the queue (default
//!   `airlock`) until killed.
//! * `produce <database-url> <after-commit|co-commit> <key>`: in one
//!   transaction scope, inserts an order and enqueues `log_execution(key)`,
//!   commits, prints `committed`, then hangs before anything else happens
//!   (after-commit: inside the dispatch, before the push) so the test can kill
//!   the process exactly between commit and dispatch.
//! * `crash-produce ...`: places orders until killed (see `crash.rs`); stops
//!   `mid-flush` in an update hook on the `Jobs` table and `in-commit` in a
//!   commit hook, both on the producer's own connection.

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use airlock::executor::BoxFuture;
use airlock::queue::SqliteQueue;
use airlock::{DispatchError, Executor, Intent, Scope};
use airlock_tests::crash::Point;
use airlock_tests::log_execution;
use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteOperation, SqlitePool, SqlitePoolOptions};

use crate::crash::{self, armed, stop_here_blocking};

pub(crate) async fn main(args: Vec<String>) -> anyhow::Result<()> {
    let role = args.first().map(String::as_str);
    if role == Some("crash-produce") {
        let args = crash::Args::parse(&args[1..])?;
        let backend = CrashBackend::connect(&args).await?;
        return crash::produce(backend, args).await;
    }
    let url = args.get(1).context("missing <database-url>")?;
    let queue = SqliteQueue::connect(url)
        .await
        .map_err(|e| anyhow::anyhow!("opening {url}: {e}"))?;
    match role {
        Some("worker") => {
            let options = crate::worker_options(&args[2..])?;
            println!("ready");
            queue.monitor(options).run().await?;
            Ok(())
        }
        Some("produce") => {
            let mode = args.get(2).context("produce: missing <mode>")?;
            let key = args.get(3).context("produce: missing <key>")?.clone();
            produce(queue, mode, key).await
        }
        other => anyhow::bail!(
            "sqlite: unknown role {other:?} (expected worker, produce or crash-produce)"
        ),
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

/// The crash producer's SQLite side: one connection whose hooks stop the
/// process inside the flush or the commit when armed.
struct CrashBackend {
    pool: SqlitePool,
    queue: Option<Arc<dyn Executor>>,
}

/// Jobs rows inserted since the current order began.
static JOBS_WRITTEN: AtomicU32 = AtomicU32::new(0);

impl CrashBackend {
    /// Opens the test's database (already migrated by the test, so a
    /// co-commit producer runs no migration), with the hooks installed.
    async fn connect(args: &crash::Args) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(&args.url)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    let mut handle = conn.lock_handle().await?;
                    handle.set_update_hook(|change| {
                        if change.table == "Jobs" && change.operation == SqliteOperation::Insert {
                            let written = JOBS_WRITTEN.fetch_add(1, Ordering::SeqCst) + 1;
                            if let Some((point, order)) = armed(|p| p == Point::MidFlush(written)) {
                                stop_here_blocking(point, order);
                            }
                        }
                    });
                    handle.set_commit_hook(|| {
                        if let Some((point, order)) = armed(|p| p == Point::InCommit) {
                            stop_here_blocking(point, order);
                        }
                        true
                    });
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .with_context(|| format!("opening {}", args.url))?;
        let queue = match args.mode {
            crash::Mode::CoCommit => None,
            crash::Mode::AfterCommit => {
                let queue = SqliteQueue::new(pool.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!("opening the queue: {e}"))?;
                Some(Arc::new(queue) as Arc<dyn Executor>)
            }
        };
        Ok(CrashBackend { pool, queue })
    }
}

impl crash::Backend for CrashBackend {
    type Db = sqlx::Sqlite;

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn queue(&self) -> Option<Arc<dyn Executor>> {
        self.queue.clone()
    }

    fn insert_order<'t>(
        tx: &'t mut sqlx::Transaction<'static, sqlx::Sqlite>,
        order: i64,
    ) -> BoxFuture<'t, sqlx::Result<()>> {
        Box::pin(async move {
            sqlx::query("INSERT INTO orders (id) VALUES (?)")
                .bind(order)
                .execute(&mut **tx)
                .await
                .map(drop)
        })
    }

    async fn arm(&self, _point: Point, _order: i64) -> anyhow::Result<()> {
        // The hooks read the armed point themselves.
        Ok(())
    }

    fn begin_order(&self) {
        JOBS_WRITTEN.store(0, Ordering::SeqCst);
    }
}
