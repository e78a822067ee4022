//! Roles on the PostgreSQL queue.
//!
//! * `worker <database-url> <name> [workers] [queue] [heartbeat-secs]
//!   [missed-heartbeats]`: runs supervised workers on the queue (default
//!   `airlock`) until killed.
//! * `crash-produce ...`: places orders until killed (see `crash.rs`); stops
//!   `mid-flush` and `in-commit` in the triggers of
//!   `airlock_tests::crash::POSTGRES_SCHEMA`, armed through a session setting
//!   on its one connection, and announces the stop once its server process
//!   sleeps.

use std::str::FromStr;
use std::sync::Arc;

use airlock::executor::BoxFuture;
use airlock::queue::PostgresQueue;
use airlock::Executor;
use airlock_tests::crash::{hang_line, Point, HANG_SETTING, PRODUCER_APPLICATION_NAME};
use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Connection as _;

use crate::crash;

pub(crate) async fn main(args: Vec<String>) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("worker") => {
            let url = args.get(1).context("worker: missing <database-url>")?;
            let options = crate::worker_options(&args[2..])?;
            let queue = PostgresQueue::connect(url)
                .await
                .map_err(|e| anyhow::anyhow!("connecting to {url}: {e}"))?;
            println!("ready");
            queue.monitor(options).run().await?;
            Ok(())
        }
        Some("crash-produce") => {
            let args = crash::Args::parse(&args[1..])?;
            let backend = CrashBackend::connect(&args).await?;
            crash::produce(backend, args).await
        }
        other => {
            anyhow::bail!("postgres: unknown role {other:?} (expected worker or crash-produce)")
        }
    }
}

/// The crash producer's PostgreSQL side: one connection, named so the test
/// can end its server process after the kill.
struct CrashBackend {
    options: PgConnectOptions,
    pool: PgPool,
    queue: Option<Arc<dyn Executor>>,
}

impl CrashBackend {
    /// Connects to the test's database (already set up by the test, so a
    /// co-commit producer runs no migration).
    async fn connect(args: &crash::Args) -> anyhow::Result<Self> {
        let options =
            PgConnectOptions::from_str(&args.url)?.application_name(PRODUCER_APPLICATION_NAME);
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("connecting to {}", args.url))?;
        let queue = match args.mode {
            crash::Mode::CoCommit => None,
            crash::Mode::AfterCommit => {
                let queue = PostgresQueue::new(pool.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!("opening the queue: {e}"))?;
                Some(Arc::new(queue) as Arc<dyn Executor>)
            }
        };
        Ok(CrashBackend {
            options,
            pool,
            queue,
        })
    }
}

impl crash::Backend for CrashBackend {
    type Db = sqlx::Postgres;

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn queue(&self) -> Option<Arc<dyn Executor>> {
        self.queue.clone()
    }

    fn insert_order<'t>(
        tx: &'t mut sqlx::Transaction<'static, sqlx::Postgres>,
        order: i64,
    ) -> BoxFuture<'t, sqlx::Result<()>> {
        Box::pin(async move {
            sqlx::query("INSERT INTO orders (id) VALUES ($1)")
                .bind(order)
                .execute(&mut **tx)
                .await
                .map(drop)
        })
    }

    async fn arm(&self, point: Point, order: i64) -> anyhow::Result<()> {
        if !matches!(point, Point::MidFlush(_) | Point::InCommit) {
            return Ok(()); // stopped in the producer's own code
        }
        // Session-wide, on the pool's only connection: the order's
        // transaction (and an after-commit dispatch's) run on it.
        sqlx::query("SELECT set_config($1, $2, false)")
            .bind(HANG_SETTING)
            .bind(point.to_string())
            .execute(&self.pool)
            .await?;
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&self.pool)
            .await?;
        // The producer's own task is stuck in a query from now on: a second
        // connection watches the first one's server process fall asleep.
        let mut watcher = sqlx::PgConnection::connect_with(&self.options).await?;
        tokio::spawn(async move {
            loop {
                let asleep: Result<bool, _> = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
                     WHERE pid = $1 AND wait_event = 'PgSleep')",
                )
                .bind(pid)
                .fetch_one(&mut watcher)
                .await;
                match asleep {
                    Ok(true) => return println!("{}", hang_line(point, order)),
                    Ok(false) => tokio::time::sleep(std::time::Duration::from_millis(2)).await,
                    Err(error) => return eprintln!("crash-produce: watching the stop: {error}"),
                }
            }
        });
        Ok(())
    }
}
