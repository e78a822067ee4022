//! The embedded queue: apalis-sqlite, a file-backed queue that needs no server.

use std::fmt;

use apalis_sqlite::{Config as SqliteConfig, SqliteConnection, SqlitePool, SqliteStorage};

use crate::error::BoxError;
use crate::executor::{DispatchError, Executor};
use crate::intent::Intent;
use crate::queue::{needs_async_scope, push_in_own_transaction, tasks_by_queue};
use crate::task::BoxFuture;
use crate::tx::CoCommitDatabase;
use crate::worker::{RestartStreaks, StartLog, WorkerOptions, LAST_ATTEMPT_STARTED};
use apalis::prelude::{BackendExt, Monitor, WorkerBuilder, WorkerBuilderExt};

/// Pushes each flush to an apalis SQLite queue in one SQLite transaction, in
/// FIFO order.
///
/// Intents without [`queue`](crate::IntentBuilder::queue) go to
/// [`DEFAULT_QUEUE`](crate::queue::DEFAULT_QUEUE) (`"airlock"`). Dispatch needs an async scope
/// (`#[airlock::scoped] async fn`, [`scope_async`](crate::scope_async)): the
/// push is I/O.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), airlock::BoxError> {
/// use airlock::queue::SqliteQueue;
///
/// // A file in production: "sqlite://jobs.db?mode=rwc".
/// let queue = SqliteQueue::connect("sqlite::memory:").await?;
/// airlock::configure(airlock::Config::new().executor(queue))?;
/// # airlock::reset_configuration();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteQueue {
    pool: SqlitePool,
}

impl fmt::Debug for SqliteQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteQueue").finish_non_exhaustive()
    }
}

impl SqliteQueue {
    /// Uses `pool`, creating the queue tables if needed (apalis migrations).
    ///
    /// Unlike apalis's own `SqliteStorage::setup`, this leaves the database's
    /// durability alone (apalis sets `synchronous = OFF` on whichever pooled
    /// connection runs it, which would weaken the application's own commits),
    /// only switches the file to WAL so workers and writers do not block each
    /// other, waits out another process migrating the same file, and
    /// tolerates the application's own sqlx migrations in the shared
    /// `_sqlx_migrations` table. (The application's migrator, in turn, needs
    /// `set_ignore_missing(true)` to tolerate apalis's.)
    ///
    /// # Errors
    /// The database error if the migrations fail.
    pub async fn new(pool: SqlitePool) -> Result<Self, BoxError> {
        let mut migrator = SqliteStorage::<()>::migrations();
        migrator.set_ignore_missing(true);
        let mut attempt = 0;
        loop {
            let setup: Result<(), BoxError> = async {
                sqlx::query("PRAGMA journal_mode = WAL")
                    .execute(&pool)
                    .await?;
                migrator.run(&pool).await?;
                Ok(())
            }
            .await;
            match setup {
                // Another process holds the write lock (it is migrating, or a
                // worker is claiming jobs): WAL switches do not wait for it.
                Err(error) if attempt < 100 && error.to_string().contains("database is locked") => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                other => break other.map(|()| SqliteQueue { pool }),
            }
        }
    }

    /// Opens (`?mode=rwc` creates) the database at `url` and sets it up.
    ///
    /// # Errors
    /// The database error if it cannot be opened or migrated.
    pub async fn connect(url: &str) -> Result<Self, BoxError> {
        Self::new(SqlitePool::connect(url).await?).await
    }

    /// The connection pool, e.g. to start a [`worker`](crate::worker) on it.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The apalis storage for one queue name.
    pub fn storage(&self, queue: &str) -> SqliteStorage<serde_json::Value> {
        SqliteStorage::new(&self.pool).with_config(SqliteConfig::default().queue(queue))
    }
}

impl SqliteQueue {
    /// A supervised apalis monitor running `options.workers` workers on this
    /// queue; run it with `.run().await` or `.run_with_signal(ctrl_c())`.
    ///
    /// ```no_run
    /// # #[allow(dead_code)] // compiled, never run
    /// # async fn run(queue: airlock::queue::SqliteQueue) -> Result<(), airlock::BoxError> {
    /// use airlock::worker::WorkerOptions;
    ///
    /// queue
    ///     .monitor(WorkerOptions::new("checkout").workers(2))
    ///     .run_with_signal(tokio::signal::ctrl_c())
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn monitor(&self, options: WorkerOptions) -> Monitor {
        let queue = self.clone();
        let monitor = options.monitor();
        let streaks = RestartStreaks::default();
        monitor.register_n(options.workers, move |index, restarts| {
            let backoff = streaks.backoff(index, restarts);
            let config = SqliteConfig::default().queue(&options.queue);
            let config = options.apply_heartbeat(
                config,
                SqliteConfig::heartbeat_interval,
                SqliteConfig::missed_heartbeats,
            );
            let storage = SqliteStorage::new(&queue.pool)
                .with_config(config)
                .with_codec(crate::worker::JobCodec)
                .poll_with_strategy(options.poll_strategy())
                .before_start(move |_| async move {
                    WorkerOptions::wait_before_restart(backoff).await;
                    Ok(())
                });
            WorkerBuilder::new(options.restarted_name(index, restarts))
                .backend(storage)
                .data(queue.start_log())
                .concurrency(options.concurrency)
                .build(crate::worker::handle)
        })
    }

    /// Marks a job's last allowed attempt as started (see
    /// [`StartLog`](crate::worker::StartLog)): a key in the row's JSON
    /// metadata, which apalis hands back on every fetch.
    fn start_log(&self) -> StartLog {
        let pool = self.pool.clone();
        StartLog::new(move |id, last_attempt| {
            let pool = pool.clone();
            Box::pin(async move {
                if !last_attempt {
                    return Ok(None);
                }
                sqlx::query(
                    "UPDATE Jobs SET metadata = json_set(COALESCE(metadata, '{}'), ?2, 'true') \
                     WHERE id = ?1",
                )
                .bind(id)
                .bind(format!("$.\"{LAST_ATTEMPT_STARTED}\""))
                .execute(&pool)
                .await?;
                Ok(None)
            })
        })
    }

    /// Writes `intents` as jobs through `connection`, one statement each,
    /// without committing: inside a caller's transaction this is co-commit.
    pub(crate) async fn push(
        connection: &mut SqliteConnection,
        intents: &[Intent],
    ) -> Result<(), BoxError> {
        // Encode everything first: an encoding error writes nothing.
        let batches = tasks_by_queue(intents)?;
        for (queue, tasks) in &batches {
            apalis_sqlite::queries::push_tasks(&mut *connection, queue, tasks).await?;
        }
        Ok(())
    }
}

impl Executor for SqliteQueue {
    fn dispatch(&self, intents: Vec<Intent>) -> Result<(), DispatchError> {
        Err(needs_async_scope("SqliteQueue", intents))
    }

    /// One SQLite transaction for the whole flush: every intent is queued, or
    /// none is and all are handed back in the error (a file locked by another
    /// connection for longer than the busy timeout, a read-only database, a
    /// closed pool, a row refused part-way all queue nothing).
    fn dispatch_async(&self, intents: Vec<Intent>) -> BoxFuture<'_, Result<(), DispatchError>> {
        Box::pin(push_in_own_transaction(&self.pool, "SQLite", intents))
    }
}

impl crate::tx::sealed::Sealed for sqlx::Sqlite {}

/// Co-commit: the jobs go into the caller's transaction.
impl CoCommitDatabase for sqlx::Sqlite {
    fn __push<'c>(
        connection: &'c mut Self::Connection,
        intents: &'c [Intent],
    ) -> BoxFuture<'c, Result<(), BoxError>> {
        Box::pin(SqliteQueue::push(connection, intents))
    }
}
