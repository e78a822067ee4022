//! The Redis queue: apalis-redis, a server-backed queue shared by any number
//! of processes.
//!
//! Redis is not the database a request commits to, so a push cannot join the
//! caller's transaction (no co-commit): dispatch to Redis **after** the commit,
//! from the scope that wraps it. A crash between the commit and the push loses
//! the flush; use the SQL queues when that matters.

use std::fmt;

use apalis::prelude::{BackendExt, Monitor, Task, WorkerBuilder, WorkerBuilderExt};
use apalis_redis::{Config as RedisConfig, ConnectionManager, RedisStorage};

use crate::error::BoxError;
use crate::executor::{DispatchError, Executor};
use crate::intent::Intent;
use crate::queue::{to_task, DEFAULT_QUEUE};
use crate::task::BoxFuture;
use crate::worker::{RestartStreaks, StartLog, WorkerOptions, STARTS};

/// Pushes each flush to apalis-redis queues in FIFO order: one atomic script
/// call per queue (per run of consecutive intents for one queue).
///
/// Intents without [`queue`](crate::IntentBuilder::queue) go to
/// [`DEFAULT_QUEUE`] (`"airlock"`), whose Redis keys are `airlock:*`.
/// Dispatch needs an async scope (`#[airlock::scoped] async fn`,
/// [`scope_async`](crate::scope_async)): the push is I/O.
///
/// What to know before choosing Redis:
/// * **No co-commit.** Redis cannot take part in a SQL transaction. Flush to
///   Redis after your transaction commits (nest the scope that dispatches
///   around the one that commits, or flush after `commit()` returns), and
///   accept that a crash in between loses that flush.
/// * **Priority is ignored.** apalis-redis keeps every job in a sorted set by
///   run time; [`priority`](crate::IntentBuilder::priority) has no effect.
/// * **Attempts** are bounded by the worker
///   ([`worker::handle`](crate::worker::handle)): apalis-redis itself would
///   retry a failed job up to 25 times whatever its `max_attempts`. A retry
///   runs `attempt` seconds after the failure.
/// * **Order.** Jobs due in the same second are fetched in id order, and ids
///   are ULIDs (millisecond time, then random bits): jobs pushed in the same
///   millisecond may start in any order (and `concurrency` runs several at
///   once anyway).
/// * **Crash recovery takes minutes.** Jobs a killed worker had claimed go
///   back to the queue once another worker sees it silent for
///   `heartbeat_interval × missed_heartbeats` (apalis's defaults: 30 s × 10;
///   see [`WorkerOptions::heartbeat`]), and then run again: delivery is at
///   least once, and apalis-redis does not count such a re-run as an
///   attempt.
/// * **Schedules have one-second resolution**, and a worker sees a new job on
///   its next poll ([`WorkerOptions::poll_interval`]): apalis-redis sends
///   pushes through its scheduled set, which wakes no worker.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), airlock::BoxError> {
/// use airlock::queue::RedisQueue;
///
/// let queue = RedisQueue::connect("redis://127.0.0.1:6379/").await?;
/// airlock::configure(airlock::Config::new().executor(queue))?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisQueue {
    conn: ConnectionManager,
}

impl fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisQueue").finish_non_exhaustive()
    }
}

impl RedisQueue {
    /// Uses `conn`, a multiplexed connection that reconnects by itself (clones
    /// share it).
    ///
    /// ```no_run
    /// # #[allow(dead_code)] // compiled, never run
    /// # async fn run() -> Result<(), airlock::BoxError> {
    /// use airlock::queue::{apalis_redis, RedisQueue};
    ///
    /// let conn = apalis_redis::connect("redis://127.0.0.1:6379/").await?;
    /// let queue = RedisQueue::new(conn);
    /// # let _ = queue; Ok(()) }
    /// ```
    pub fn new(conn: ConnectionManager) -> Self {
        RedisQueue { conn }
    }

    /// Connects to the Redis server at `url` (`redis://host:port/db`).
    ///
    /// # Errors
    /// The Redis error if the URL is invalid or the server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, BoxError> {
        Ok(Self::new(apalis_redis::connect(url).await?))
    }

    /// The connection, e.g. for your own commands or an apalis storage of
    /// another type.
    pub fn connection(&self) -> &ConnectionManager {
        &self.conn
    }

    /// The apalis storage for one queue name (never apalis's default, a Rust
    /// type name), to push raw jobs or build your own worker.
    ///
    /// ```no_run
    /// # #[allow(dead_code)] // compiled, never run
    /// # async fn run(queue: airlock::queue::RedisQueue) -> Result<(), airlock::BoxError> {
    /// use airlock::queue::apalis::prelude::TaskSink;
    ///
    /// let mut storage = queue.storage("airlock");
    /// storage.push(serde_json::json!({ "v": 1, "id": "01JD0000000000000000000000",
    ///     "task": "send_email", "args": { "user_id": 7 } })).await?;
    /// # Ok(()) }
    /// ```
    pub fn storage(&self, queue: &str) -> RedisStorage<serde_json::Value> {
        RedisStorage::new(self.conn.clone()).with_config(config(queue))
    }

    /// A supervised apalis monitor running `options.workers` workers on this
    /// queue; run it with `.run().await` or `.run_with_signal(ctrl_c())`.
    ///
    /// Workers poll every [`poll_interval`](WorkerOptions::poll_interval)
    /// (apalis-redis pushes never wake them) and read jobs with
    /// [`JobCodec`](crate::worker::JobCodec), so a payload that is not JSON is
    /// aborted instead of stopping a worker with the job still claimed.
    ///
    /// ```no_run
    /// # #[allow(dead_code)] // compiled, never run
    /// # async fn run(queue: airlock::queue::RedisQueue) -> Result<(), airlock::BoxError> {
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
            let config = config(&options.queue);
            let config = options.apply_heartbeat(
                config,
                RedisConfig::heartbeat_interval,
                RedisConfig::missed_heartbeats,
            );
            let storage = RedisStorage::new(queue.conn.clone())
                .with_config(config.clone())
                .poll_with_strategy(options.poll_strategy())
                .before_start({
                    let (conn, config) = (queue.conn.clone(), config.clone());
                    let every = options.poll_interval;
                    // Lives as long as this worker's backend: the promoter
                    // below stops once the worker is gone.
                    let alive = std::sync::Arc::new(());
                    move |_| {
                        let (mut conn, config) = (conn.clone(), config.clone());
                        let worker = std::sync::Arc::downgrade(&alive);
                        async move {
                            WorkerOptions::wait_before_restart(backoff).await;
                            promote_due_in_chunks(&mut conn, &config).await;
                            tokio::spawn(promote_while_alive(conn, config, every, worker));
                            Ok(())
                        }
                    }
                })
                .with_codec(crate::worker::JobCodec);
            WorkerBuilder::new(options.restarted_name(index, restarts))
                .backend(storage)
                .data(queue.start_log(&options.queue))
                .concurrency(options.concurrency)
                .build(crate::worker::handle)
        })
    }

    /// Counts a job's starts (see [`StartLog`](crate::worker::StartLog)) in
    /// a field of its metadata hash, which apalis-redis hands back on every
    /// fetch: apalis-redis counts no attempt when it hands a job out again
    /// after its worker died, so only this count ends a job whose every run
    /// crashes its worker. One round trip per job.
    fn start_log(&self, queue: &str) -> StartLog {
        let conn = self.conn.clone();
        let prefix = config(queue).job_meta_hash();
        StartLog::new(move |id, _last_attempt| {
            let mut conn = conn.clone();
            let key = format!("{prefix}:{id}");
            Box::pin(async move {
                let starts: u64 = redis::cmd("HINCRBY")
                    .arg(key)
                    .arg(STARTS)
                    .arg(1)
                    .query_async(&mut conn)
                    .await?;
                Ok(Some(usize::try_from(starts).unwrap_or(usize::MAX)))
            })
        })
    }

    /// Pushes `tasks` to `queue` in one script call: all of them or none.
    async fn push(&self, queue: &str, tasks: &[Task<Vec<u8>>]) -> Result<(), apalis_redis::Error> {
        let mut conn = self.conn.clone();
        apalis_redis::queries::push_tasks(&mut conn, &config(queue), tasks).await?;
        Ok(())
    }
}

/// How many due jobs [`promote_due_in_chunks`] moves per script call: well
/// under the ~8,000 arguments a Redis command or Lua `unpack` takes.
const PROMOTE_CHUNK: usize = 1_000;

/// Moves the scheduled jobs that are due into the active list, at most
/// [`PROMOTE_CHUNK`] per (atomic) script call, until none is left due.
const PROMOTE_DUE: &str = r#"
-- KEYS[1] scheduled set, KEYS[2] active list, KEYS[3] signal list
-- ARGV[1] now (seconds), ARGV[2] chunk size
local ids = redis.call("zrangebyscore", KEYS[1], 0, ARGV[1], "LIMIT", 0, ARGV[2])
if #ids > 0 then
    redis.call("rpush", KEYS[2], unpack(ids))
    redis.call("zrem", KEYS[1], unpack(ids))
    redis.call("del", KEYS[3])
    redis.call("lpush", KEYS[3], 1)
end
return #ids
"#;

/// Promotes every due scheduled job of `config`'s queue, in chunks: as a
/// worker starts, and every poll interval while it runs.
///
/// apalis-redis's own fetch promotes all due jobs in one `RPUSH` with one
/// argument per job, which Redis refuses above about 8,000: once a flush of
/// more jobs than that was due, every fetch failed and the queue never
/// drained. Promoted here a chunk at a time, the batch reaches the active
/// list before a fetch meets it whole (and a worker whose fetch failed
/// anyway promotes before it restarts). Best effort: an error is logged.
async fn promote_due_in_chunks(conn: &mut ConnectionManager, config: &RedisConfig) {
    let script = redis::Script::new(PROMOTE_DUE);
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.as_secs())
            .unwrap_or_default();
        let moved: Result<usize, _> = script
            .key(config.scheduled_jobs_set())
            .key(config.active_jobs_list())
            .key(config.signal_list())
            .arg(now)
            .arg(PROMOTE_CHUNK)
            .invoke_async(conn)
            .await;
        match moved {
            Ok(moved) if moved < PROMOTE_CHUNK => return,
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(target: "airlock::queue", %error, "promoting due Redis jobs failed");
                return;
            }
        }
    }
}

/// Keeps promoting due jobs in chunks every `every` while the worker lives,
/// so a batch that falls due while workers run reaches the active list
/// before apalis-redis's own fetch tries to move it all at once (and fails,
/// stopping the worker with its jobs in flight).
async fn promote_while_alive(
    mut conn: ConnectionManager,
    config: RedisConfig,
    every: std::time::Duration,
    worker: std::sync::Weak<()>,
) {
    let every = every.max(std::time::Duration::from_millis(10));
    loop {
        tokio::time::sleep(every).await;
        if worker.strong_count() == 0 {
            return;
        }
        promote_due_in_chunks(&mut conn, &config).await;
    }
}

/// Whether a failed push may still have run: the request may have reached
/// Redis and only the answer was lost (the connection dropped, or the
/// response timeout passed, after sending). Only a refused connection, an
/// error before anything was sent (encoding), or an error reply from Redis
/// (it has a code: `WRONGTYPE`, `OOM`, ...) prove the script did not run; any
/// other failure counts as in doubt.
fn may_have_run(error: &apalis_redis::Error) -> bool {
    match error {
        apalis_redis::Error::Database(error) => {
            !error.is_connection_refusal() && error.code().is_none()
        }
        _ => false,
    }
}

/// The config of one queue: apalis's defaults, with the queue named.
fn config(queue: &str) -> RedisConfig {
    RedisConfig::default().queue(queue)
}

impl Executor for RedisQueue {
    fn dispatch(&self, intents: Vec<Intent>) -> Result<(), DispatchError> {
        Err(crate::queue::needs_async_scope("RedisQueue", intents))
    }

    /// Encodes every intent first (an encoding error pushes nothing), then
    /// pushes each queue's intents in one atomic script call, in FIFO order.
    ///
    /// Consecutive intents for the same queue form one push, so a flush to
    /// one queue is one call; when queues interleave, each run of the same
    /// queue is its own call. That keeps a failure exact: the runs already
    /// pushed are reported dispatched, and every intent from the failed run
    /// on is handed back, never attempted.
    ///
    /// A script runs atomically: no other client sees half a run. Two limits
    /// of any network queue remain:
    /// * When the connection drops or times out (the connection's response
    ///   timeout, 500 ms unless configured) after a push was sent, Redis may
    ///   have run it, or may still run it (a frozen server reads it once it
    ///   thaws). That run is reported [`Interrupted`](crate::Fate::Interrupted)
    ///   and handed back in [`DispatchError::in_doubt`], never reported
    ///   dispatched or not attempted; the runs after it are not attempted. Only
    ///   a refused connection or an error reply proves a run was not queued;
    ///   any other connection error counts as in doubt, even when the request
    ///   never left.
    /// * Redis does not roll a script back, so an error raised inside it (a
    ///   key of the wrong type, say) leaves the jobs written before the error;
    ///   an error reply is reported as not attempted.
    fn dispatch_async(&self, mut intents: Vec<Intent>) -> BoxFuture<'_, Result<(), DispatchError>> {
        Box::pin(async move {
            let runs = match encode(&intents) {
                Ok(runs) => runs,
                Err(error) => {
                    return Err(DispatchError::stopped_at(
                        0,
                        format!("encoding a job for Redis failed; nothing was queued: {error}"),
                        intents,
                    ))
                }
            };
            let mut pushed = 0;
            for (queue, tasks) in &runs {
                if let Err(error) = self.push(queue, tasks).await {
                    let mut rest = intents.split_off(pushed);
                    if may_have_run(&error) {
                        let after = rest.split_off(tasks.len());
                        return Err(DispatchError::in_doubt_at(
                            pushed,
                            format!(
                                "pushing {} job(s) to the Redis queue `{queue}` got no answer; \
                                 the {pushed} intent(s) before them were queued, these may or \
                                 may not have been, the {} after them were not: {error}",
                                tasks.len(),
                                after.len(),
                            ),
                            rest,
                            after,
                        ));
                    }
                    return Err(DispatchError::stopped_at(
                        pushed,
                        format!(
                            "pushing {} job(s) to the Redis queue `{queue}` failed; the {pushed} \
                             intent(s) before them were queued, the {} from there on were not: \
                             {error}",
                            tasks.len(),
                            rest.len(),
                        ),
                        rest,
                    ));
                }
                pushed += tasks.len();
            }
            Ok(())
        })
    }
}

/// Consecutive intents for one queue, as apalis tasks.
type Run = (String, Vec<Task<Vec<u8>>>);

/// The intents as apalis tasks, in runs of consecutive intents for the same
/// queue.
fn encode(intents: &[Intent]) -> Result<Vec<Run>, crate::Error> {
    let mut runs: Vec<Run> = Vec::new();
    for intent in intents {
        let queue = intent.options().queue.as_deref().unwrap_or(DEFAULT_QUEUE);
        let task = to_task(intent)?;
        match runs.last_mut() {
            Some((last, tasks)) if last == queue => tasks.push(task),
            _ => runs.push((queue.to_owned(), vec![task])),
        }
    }
    Ok(runs)
}
