//! The embedded queue: apalis-sqlite, a file-backed queue that needs no server.

use std::fmt;

use apalis_sqlite::{Config as SqliteConfig, SqliteConnection, SqlitePool, SqliteStorage};

use crate::error::BoxError;
use crate::executor::{DispatchError, Executor};
use crate::intent::Intent;
use crate::queue::{to_task, DEFAULT_QUEUE};
use crate::task::BoxFuture;
use crate::worker::WorkerOptions;
use apalis::prelude::{BackendExt, Monitor, WorkerBuilder, WorkerBuilderExt};

/// Pushes each flush to an apalis SQLite queue in one SQLite transaction, in
/// FIFO order.
///
/// Intents without [`queue`](crate::IntentBuilder::queue) go to
/// [`DEFAULT_QUEUE`] (`"airlock"`). Dispatch needs an async scope
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
    /// # Errors
    /// The database error if the migrations fail.
    pub async fn new(pool: SqlitePool) -> Result<Self, BoxError> {
        SqliteStorage::setup(&pool).await?;
        Ok(SqliteQueue { pool })
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
        monitor.register_n(options.workers, move |index, _restarts| {
            let storage = queue
                .storage(&options.queue)
                .poll_with_interval(options.poll_interval);
            WorkerBuilder::new(options.worker_name(index))
                .backend(storage)
                .concurrency(options.concurrency)
                .build(crate::worker::handle)
        })
    }

    /// Writes `intents` as jobs through `connection`, one statement each,
    /// without committing: inside a caller's transaction this is co-commit.
    pub(crate) async fn push(
        connection: &mut SqliteConnection,
        intents: &[Intent],
    ) -> Result<(), BoxError> {
        // Encode everything first: an encoding error writes nothing.
        let mut batches: Vec<(&str, Vec<_>)> = Vec::new();
        for intent in intents {
            let queue = intent.options().queue.as_deref().unwrap_or(DEFAULT_QUEUE);
            let task = to_task(intent)?;
            match batches.iter_mut().find(|(q, _)| *q == queue) {
                Some((_, tasks)) => tasks.push(task),
                None => batches.push((queue, vec![task])),
            }
        }
        for (queue, tasks) in &batches {
            apalis_sqlite::queries::push_tasks(&mut *connection, queue, tasks).await?;
        }
        Ok(())
    }
}

impl Executor for SqliteQueue {
    fn dispatch(&self, intents: Vec<Intent>) -> Result<(), DispatchError> {
        Err(DispatchError::stopped_at(
            0,
            "SqliteQueue pushes with async I/O and cannot dispatch from a synchronous scope; \
             flush from an async scope (#[airlock::scoped] async fn, airlock::scope_async)",
            intents,
        ))
    }

    /// One SQLite transaction for the whole flush: every intent is queued, or
    /// none is and all are handed back in the error.
    fn dispatch_async(&self, intents: Vec<Intent>) -> BoxFuture<'_, Result<(), DispatchError>> {
        Box::pin(async move {
            let pushed: Result<(), BoxError> = async {
                let mut tx = self.pool.begin().await?;
                Self::push(&mut tx, &intents).await?;
                tx.commit().await?;
                Ok(())
            }
            .await;
            match pushed {
                Ok(()) => Ok(()),
                Err(error) => Err(DispatchError::stopped_at(
                    0,
                    format!("pushing to the SQLite queue failed; nothing was queued: {error}"),
                    intents,
                )),
            }
        })
    }
}
