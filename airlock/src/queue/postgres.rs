//! The server queue: apalis-postgres, jobs in the `apalis.jobs` table of a
//! PostgreSQL database that any number of worker processes consume.

use std::fmt;

use apalis_postgres::{Config as PostgresConfig, PgConnection, PgPool, PostgresStorage, Pubsub};

use crate::error::BoxError;
use crate::executor::{DispatchError, Executor};
use crate::intent::Intent;
use crate::queue::{needs_async_scope, push_in_own_transaction, tasks_by_queue};
use crate::task::BoxFuture;
use crate::tx::CoCommitDatabase;
use crate::worker::{
    PollOrNotified, RestartStreaks, StartLog, WorkerOptions, LAST_ATTEMPT_STARTED,
};
use apalis::prelude::{BackendExt, Monitor, StreamStrategy, WorkerBuilder, WorkerBuilderExt};

/// Pushes each flush to an apalis PostgreSQL queue in one transaction, in FIFO
/// order.
///
/// Intents without [`queue`](crate::IntentBuilder::queue) go to
/// [`DEFAULT_QUEUE`](crate::queue::DEFAULT_QUEUE) (`"airlock"`). Each queue of a flush is one multi-row
/// `INSERT` (apalis's `push_tasks`), and all of them commit together. Dispatch
/// needs an async scope (`#[airlock::scoped] async fn`,
/// [`scope_async`](crate::scope_async)): the push is I/O.
///
/// The database needs the `hstore` extension (apalis stores job metadata in
/// it): [`new`](Self::new) creates it if missing, which takes a role allowed
/// to (a superuser, or the database owner since PostgreSQL 13).
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), airlock::BoxError> {
/// use airlock::queue::PostgresQueue;
///
/// let queue = PostgresQueue::connect("postgres://app@localhost/app").await?;
/// airlock::configure(airlock::Config::new().executor(queue))?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresQueue {
    pool: PgPool,
}

// apalis's `PostgresStorage` has no `Debug`, and the pool's says nothing useful.
impl fmt::Debug for PostgresQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresQueue").finish_non_exhaustive()
    }
}

impl PostgresQueue {
    /// Uses `pool`, creating the `hstore` extension and the queue tables (the
    /// `apalis` schema, apalis migrations) if needed.
    ///
    /// # Errors
    /// The database error if the extension cannot be created (the role lacks
    /// the right: have an administrator run `CREATE EXTENSION hstore` once) or
    /// the migrations fail.
    pub async fn new(pool: PgPool) -> Result<Self, BoxError> {
        ensure_hstore(&pool).await?;
        PostgresStorage::setup(&pool).await?;
        Ok(PostgresQueue { pool })
    }

    /// Connects to the database at `url` (`postgres://user:password@host/db`)
    /// and sets it up as [`new`](Self::new) does.
    ///
    /// # Errors
    /// The database error if it cannot be reached or set up.
    pub async fn connect(url: &str) -> Result<Self, BoxError> {
        Self::new(PgPool::connect(url).await?).await
    }

    /// The connection pool, e.g. to start a [`worker`](crate::worker) on it or
    /// to begin the transaction a flush commits with.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The apalis storage for one queue name, consuming or producing
    /// `serde_json::Value` jobs (the shape [`worker::handle`](crate::worker::handle)
    /// reads).
    pub fn storage(&self, queue: &str) -> PostgresStorage<serde_json::Value> {
        // Explicit: apalis would otherwise name the queue after the Rust type.
        PostgresStorage::new(&self.pool).with_config(PostgresConfig::default().queue(queue))
    }

    /// A supervised apalis monitor running `options.workers` workers on this
    /// queue; run it with `.run().await` or `.run_with_signal(ctrl_c())`.
    ///
    /// Any number of processes may run workers on the same queue: each job is
    /// claimed by one worker (`FOR UPDATE SKIP LOCKED`). A job whose payload is
    /// not even JSON is aborted like any other job that can never succeed
    /// (apalis's own JSON decoding would stop the worker instead, stranding the
    /// rows it had claimed). An idle worker wakes as soon as a job is
    /// committed: each worker listens for apalis's `LISTEN/NOTIFY`
    /// announcement of new jobs (on a connection of its own, outside the
    /// queue's pool), and polls every `poll_interval` as well, for
    /// jobs that become due later (they announce nothing) and in case a
    /// notification is lost (apalis's own interval can lapse until the 30 s
    /// heartbeat; this one does not).
    ///
    /// ```no_run
    /// # #[allow(dead_code)] // compiled, never run
    /// # async fn run(queue: airlock::queue::PostgresQueue) -> Result<(), airlock::BoxError> {
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
            let config = PostgresConfig::default().queue(&options.queue);
            let config = options.apply_heartbeat(
                config,
                PostgresConfig::heartbeat_interval,
                PostgresConfig::missed_heartbeats,
            );
            let storage = PostgresStorage::new(&queue.pool)
                .with_config(config)
                .with_codec(crate::worker::JobCodec)
                .poll_with_strategy(PollOrNotified::new(
                    options.poll_strategy(),
                    StreamStrategy::new(Pubsub::new(
                        listener_pool(&queue.pool),
                        options.queue.clone(),
                    )),
                ))
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
    /// [`StartLog`](crate::worker::StartLog)): a key in the row's hstore
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
                    "UPDATE apalis.jobs SET metadata = COALESCE(metadata, ''::hstore) \
                     || hstore($2, 'true') WHERE id = $1",
                )
                .bind(id)
                .bind(LAST_ATTEMPT_STARTED)
                .execute(&pool)
                .await?;
                Ok(None)
            })
        })
    }

    /// Writes `intents` as jobs through `connection`, one multi-row `INSERT`
    /// per queue, without committing: inside a caller's transaction this is
    /// co-commit (the jobs exist if and only if the transaction commits).
    ///
    /// A failed statement aborts the surrounding transaction, as any
    /// PostgreSQL error does: the caller has to roll back.
    pub(crate) async fn push(
        connection: &mut PgConnection,
        intents: &[Intent],
    ) -> Result<(), BoxError> {
        // Encode everything first: an encoding error writes nothing.
        let batches = tasks_by_queue(intents)?;
        for (queue, tasks) in batches {
            apalis_postgres::queries::push_tasks(&mut *connection, queue, tasks).await?;
        }
        Ok(())
    }
}

/// Creates the `hstore` extension apalis's migrations and pushes need, unless
/// it exists: a separate step so a missing right gets its own clear error.
async fn ensure_hstore(pool: &PgPool) -> Result<(), BoxError> {
    use sqlx::Executor as _;

    let Err(error) = pool.execute("CREATE EXTENSION IF NOT EXISTS hstore").await else {
        return Ok(());
    };
    // Two processes creating it at once: one of them loses the race with a
    // unique violation although the extension now exists.
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'hstore')")
            .fetch_one(pool)
            .await?;
    if exists {
        return Ok(());
    }
    Err(format!(
        "the apalis PostgreSQL queue needs the hstore extension, and creating it failed \
         ({error}); have a role allowed to create extensions run `CREATE EXTENSION hstore` \
         in this database once"
    )
    .into())
}

/// A one-connection pool for a worker's `LISTEN`: apalis's listener holds
/// the connection it takes for as long as it listens, and taking it from the
/// application's pool would pin one of its connections per worker (ten
/// workers would exhaust a default pool of ten). Connects on first use.
fn listener_pool(pool: &PgPool) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(pool.connect_options().as_ref().clone())
}

impl Executor for PostgresQueue {
    fn dispatch(&self, intents: Vec<Intent>) -> Result<(), DispatchError> {
        Err(needs_async_scope("PostgresQueue", intents))
    }

    /// One PostgreSQL transaction for the whole flush: every intent is queued,
    /// or none is and all are handed back in the error. Should the connection
    /// drop after `COMMIT` was sent and before its answer came, the server may
    /// have committed: every intent is then in doubt
    /// ([`Interrupted`](crate::Fate::Interrupted), handed back in
    /// [`DispatchError::in_doubt`]), never reported not attempted.
    ///
    /// The push has no timeout of its own: a server that stops answering
    /// (frozen, or a network that drops packets) holds the flush until the
    /// TCP connection fails. Bound it with the pool's `acquire_timeout`
    /// (for a server that is down) and by awaiting the flush under
    /// `tokio::time::timeout` (for one that hangs): a flush dropped that way
    /// reports its intents `Interrupted`, and its transaction, committed or
    /// not, is all or nothing.
    fn dispatch_async(&self, intents: Vec<Intent>) -> BoxFuture<'_, Result<(), DispatchError>> {
        Box::pin(push_in_own_transaction(&self.pool, "PostgreSQL", intents))
    }
}

impl crate::tx::sealed::Sealed for sqlx::Postgres {}

/// Co-commit: the jobs go into the caller's transaction.
impl CoCommitDatabase for sqlx::Postgres {
    fn __push<'c>(
        connection: &'c mut Self::Connection,
        intents: &'c [Intent],
    ) -> BoxFuture<'c, Result<(), BoxError>> {
        Box::pin(PostgresQueue::push(connection, intents))
    }
}
