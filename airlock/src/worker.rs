//! Workers: consume a queue and run each job's task by name.
//!
//! The handler reads the job's [`Envelope`], checks its version, looks the
//! task up in the [registry](crate::registry()), decodes the arguments and runs
//! the task with [`run_intent`](crate::executor::run_intent): in its own scope,
//! so intents it enqueues cascade as they would in process.
//!
//! * A job that is not a valid envelope, names an unknown task, carries
//!   undecodable arguments, is larger than
//!   [`Config::max_payload_bytes`](crate::Config::max_payload_bytes), or is
//!   already past the cascade depth limit can never succeed: it is aborted
//!   (not retried) with an error that says why. So is a job whose decoding
//!   panics (a user `Deserialize` that unwraps): nothing [`handle`] does can
//!   unwind into the worker and stop it.
//! * A task error or panic fails the job, and the queue retries it.
//! * The worker itself enforces the job's attempt budget, taken from the
//!   queue's own record of the job (the row, or apalis-redis's metadata), the
//!   one source of truth: a failure on attempt `max_attempts` or later aborts
//!   the job instead of leaving it to the backend's retry policy
//!   (apalis-redis alone would retry up to 25 times). Runs that were cut off
//!   (the worker died or stalled: a task that crashes its process, say)
//!   count too: airlock's monitors record starts in the job's own queue
//!   record (the last allowed attempt's, [`LAST_ATTEMPT_STARTED`], on the SQL
//!   backends, which count a re-run's attempt; every start, [`STARTS`], on
//!   Redis, which does not), and a job handed out again past its budget
//!   after such runs is aborted unrun: it runs at most `max_attempts` times.
//!   A job handed out past its budget by runs that never started (returned
//!   by a shutdown) runs once more, and a failure then ends it.
//! * Sync tasks run on tokio's blocking pool, never on the worker's async
//!   threads: a task that blocks for minutes neither delays the worker's
//!   other jobs nor its heartbeat.
//! * apalis stops a worker when a job's bytes do not decode, and the job stays
//!   claimed by the dead worker until orphan recovery hands it to the next one:
//!   one bad payload would stall the queue. Workers read jobs with
//!   [`JobCodec`], which turns a payload that is not JSON (or too large) into
//!   a job the handler aborts.
//! * Error texts are clipped before they reach a log or the queue's result
//!   column: a drifted argument type must not copy megabytes, or a token, out
//!   of the payload.
//!
//! # Delivery: at least once
//! A job acknowledged done ran to success once. A job whose worker dies (or
//! stops heartbeating) mid-run is handed to another worker once the orphan
//! window passes ([`WorkerOptions::heartbeat`] × [`WorkerOptions::missed_heartbeats`];
//! apalis's defaults: 60 s on SQLite, 300 s on PostgreSQL and Redis), and
//! runs again (on the SQL backends that re-run counts as an attempt). A
//! worker that is alive but stalled longer than the window (a paused VM, a
//! `SIGSTOP`) can likewise see its job run elsewhere; keep the window well
//! above the longest pause you expect, and make tasks idempotent where a
//! second run would hurt. The same holds for a sync task whose job apalis
//! drops while it runs (its worker stopped on a backend error and restarts
//! under a new name): sync code cannot be stopped, so it runs to its end on
//! the blocking pool while the queue may hand the job out again; the worker
//! logs it as an error.

use std::convert::Infallible;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{
    AbortError, Attempt, BoxDynError, Codec, FromRequest, IntervalStrategy, PollSnapshot,
    PollStrategy, Task,
};

use crate::clipped::Clipped;
use crate::envelope::Envelope;
use crate::envelope::{DEFAULT_MAX_ATTEMPTS, DEFAULT_QUEUE};
use crate::error::BoxError;
use crate::executor::in_process::{cascade_limit, run_sync_intent, task_depth};
use crate::flush::panic_message;
use crate::intent::Intent;
use crate::task::TaskKind;

/// The most text of one error a worker writes to a log or a job's result.
const ERROR_TEXT_BYTES: usize = 1024;

/// What the queue says about this run of a job, as apalis hands it to
/// [`handle`]: which attempt this is and how many the job is allowed.
///
/// An apalis extractor: any handler can take it as a parameter.
#[derive(Debug, Clone)]
pub struct JobRun {
    attempt: Attempt,
    max_attempts: Option<usize>,
    task_id: Option<String>,
    /// The job's record says a run on its last allowed attempt started.
    last_attempt_started: bool,
    start_log: Option<StartLog>,
}

/// The metadata key a worker sets on a job's queue record as the job's last
/// allowed attempt starts (the SQL backends).
pub const LAST_ATTEMPT_STARTED: &str = "airlock.last_attempt_started";

/// The metadata field a worker counts a job's starts in (Redis).
pub const STARTS: &str = "airlock.starts";

/// Records that a job starts, in the job's own queue record, so that a run
/// the queue hands out again after a run that was cut off (its worker died
/// or stalled) past `max_attempts` is aborted instead of run.
///
/// apalis hands such a job out again whether the cut-off run had started or
/// was still waiting in the worker's buffer, and the SQL backends count an
/// attempt for either while Redis counts none, so the attempt alone cannot
/// tell a crash-looping job (abort it) from one a shutdown returned
/// unstarted (run it). The SQL backends mark the last allowed attempt as it
/// starts (one write, for the rare job that gets there); Redis, which counts
/// no re-run, counts every start. airlock's monitors install it on every
/// backend; a worker built by hand without it runs such a job once more, and
/// a failure then ends it.
#[derive(Clone)]
pub(crate) struct StartLog(std::sync::Arc<MarkFn>);

/// `(job id, whether this is its last allowed attempt)` to the number of
/// starts recorded so far, this one included, where the backend counts them.
type MarkFn = dyn Fn(String, bool) -> crate::task::BoxFuture<'static, Result<Option<usize>, BoxError>>
    + Send
    + Sync;

impl StartLog {
    pub(crate) fn new(
        mark: impl Fn(String, bool) -> crate::task::BoxFuture<'static, Result<Option<usize>, BoxError>>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        StartLog(std::sync::Arc::new(mark))
    }
}

impl fmt::Debug for StartLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StartLog")
    }
}

impl JobRun {
    /// This run's attempt number, 1 on the first run (apalis counts the
    /// attempt as the job starts).
    pub fn attempt(&self) -> usize {
        self.attempt.current()
    }

    /// How many attempts the queue's record of the job allows, if it says.
    pub fn max_attempts(&self) -> Option<usize> {
        self.max_attempts
    }
}

impl<Args: Sync> FromRequest<Task<Args>> for JobRun {
    type Error = Infallible;

    async fn from_request(task: &Task<Args>) -> Result<Self, Infallible> {
        let ctx = task.ctx();
        Ok(JobRun {
            attempt: ctx.raw_attempt().clone(),
            max_attempts: ctx.max_attempts(),
            task_id: ctx.task_id().map(ToString::to_string),
            last_attempt_started: ctx.metadata().contains_key(LAST_ATTEMPT_STARTED),
            start_log: ctx.data().get::<StartLog>().cloned(),
        })
    }
}

/// The apalis handler: runs one job carrying an airlock envelope.
///
/// Use it with apalis's `WorkerBuilder` on a storage of `serde_json::Value`
/// read with [`JobCodec`]:
/// `WorkerBuilder::new("airlock-1").backend(storage.with_codec(JobCodec)).build(airlock::worker::handle)`.
/// See the [module docs](self) for what it guarantees.
///
/// # Errors
/// An [`AbortError`] for a job that can never succeed, that failed on its
/// last allowed attempt, or that arrived past it; the task's own error (or
/// panic message) otherwise. Every error's text is clipped to about 1 KiB.
pub async fn handle(job: serde_json::Value, run: JobRun) -> Result<(), BoxDynError> {
    // Read after the job started: apalis counts the attempt as it starts.
    let attempt = run.attempt();
    // One span per run: every line the worker and the task log carries the
    // job's id, its attempt and (once decoded) its task.
    // ERROR level: enabled whenever the worker's warnings and errors are, so
    // those lines keep the job's id under any filter.
    let span = tracing::error_span!(
        target: "airlock::worker",
        "airlock.job",
        job_id = run.task_id.as_deref().unwrap_or("?"),
        attempt,
        task = tracing::field::Empty,
    );
    let mark = match (run.start_log, run.task_id) {
        (Some(log), Some(id)) => Some(move |last| (log.0)(id, last)),
        _ => None,
    };
    tracing::Instrument::instrument(
        handle_run(
            job,
            attempt,
            run.max_attempts,
            run.last_attempt_started,
            mark,
        ),
        span,
    )
    .await
}

/// [`handle`] for one job's bytes, as a worker reading with [`JobCodec`]
/// runs it: the fuzz targets in `airlock/fuzz` decode *and run* hostile
/// payloads through the very code `handle` runs. Not public API.
///
/// # Errors
/// As [`handle`].
#[doc(hidden)]
pub async fn handle_bytes(
    bytes: &[u8],
    attempt: usize,
    max_attempts: Option<usize>,
) -> Result<(), BoxDynError> {
    handle_run(
        parse(bytes),
        attempt,
        max_attempts,
        false,
        None::<NoStartLog>,
    )
    .await
}

/// What [`handle_bytes`] records a start with: nothing.
type NoStartLog = fn(bool) -> std::future::Ready<Result<Option<usize>, BoxError>>;

async fn handle_run<M, F>(
    job: serde_json::Value,
    attempt: usize,
    max_attempts: Option<usize>,
    last_attempt_started: bool,
    record_start: Option<M>,
) -> Result<(), BoxDynError>
where
    M: FnOnce(bool) -> F,
    F: std::future::Future<Output = Result<Option<usize>, BoxError>>,
{
    let intent = decode(job)?;
    let task = intent.name();
    tracing::Span::current().record("task", task);
    // The queue's record is the one source of truth; the envelope's copy
    // serves only where a backend keeps none. At least one attempt.
    let max_attempts = max_attempts
        .or(intent.options().max_attempts.map(|max| max as usize))
        .unwrap_or(DEFAULT_MAX_ATTEMPTS as usize)
        .max(1);
    if last_attempt_started && attempt >= max_attempts {
        // Handed out again after its last allowed run started and never
        // reported back (the worker died or stalled): apalis-sql counts an
        // attempt for that, apalis-redis does not, hence `>=`.
        tracing::error!(
            target: "airlock::worker",
            task, attempt, max_attempts,
            "job aborted unrun: its last allowed attempt started and was cut off"
        );
        return Err(abort(format!(
            "task `{task}`: its last allowed attempt (max_attempts {max_attempts}) already \
             started and was cut off (its worker died or stalled); it is not run again"
        )));
    }
    if attempt > max_attempts {
        // Handed out again after runs that were returned without starting
        // (a shutdown with the job fetched but not begun: apalis counts an
        // attempt for those too). It runs once more; a failure ends it below.
        tracing::warn!(
            target: "airlock::worker",
            task, attempt, max_attempts,
            "job runs past its max_attempts: earlier runs were returned without starting"
        );
    }
    if let Err(error) = task_depth(&intent, cascade_limit()) {
        tracing::error!(target: "airlock::worker", task, error = %clip(&error), "job aborted: it can never succeed");
        return Err(abort(error));
    }
    // Before the run: a run cut off after this point is known to have
    // started. Failing to record it only loses that knowledge.
    let starts = match record_start {
        Some(record) => record(attempt >= max_attempts)
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(
                    target: "airlock::worker",
                    task, error = %clip(&error),
                    "could not record that the job starts; running it anyway"
                );
                None
            }),
        None => None,
    };
    if let Some(starts) = starts.filter(|starts| *starts > max_attempts) {
        // Counted starts (Redis, whose re-runs after a dead worker count no
        // attempt): runs before this one were cut off past the budget.
        tracing::error!(
            target: "airlock::worker",
            task, starts, max_attempts,
            "job aborted unrun: its allowed attempts all started and were cut off"
        );
        return Err(abort(format!(
            "task `{task}` is starting for the {starts}th time, past its max_attempts \
             {max_attempts}: earlier runs were cut off (their worker died or stalled); it is \
             not run again"
        )));
    }
    // What counts as this run's attempt: the queue's count, or the starts.
    let attempt = attempt.max(starts.unwrap_or(0));
    let Err(error) = run_task(intent).await else {
        return Ok(());
    };
    if attempt >= max_attempts {
        tracing::error!(
            target: "airlock::worker",
            task, attempt, max_attempts, error = %clip(&error),
            "task failed on its last attempt; the job is aborted"
        );
        return Err(Box::new(AbortError::new(AttemptsExhausted {
            task,
            attempt,
            max_attempts,
            error,
        })));
    }
    tracing::warn!(target: "airlock::worker", task, attempt, max_attempts, error = %clip(&error), "task failed");
    Err(Box::new(JobFailed(error)))
}

/// Runs the task: a sync task on tokio's blocking pool (inline when there is
/// no tokio runtime), an async one on this task.
async fn run_task(intent: Intent) -> Result<(), BoxError> {
    let task = intent.name();
    if intent.task().kind() == TaskKind::Async {
        return crate::executor::run_intent(intent).await;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            // The job's span goes along to the blocking thread.
            let span = tracing::Span::current();
            let running = runtime.spawn_blocking(move || span.in_scope(|| run_sync_intent(intent)));
            // Sync code cannot be stopped mid-run: if apalis drops this job
            // (its worker stopped on a backend error), the task runs on, and
            // may run again elsewhere once the orphan window passes.
            let mut abandoned = Abandoned(Some(task));
            let outcome = running.await;
            abandoned.0 = None;
            outcome.unwrap_or_else(|join| {
                Err(match join.try_into_panic() {
                    Ok(panic) => format!("task `{task}` panicked: {}", panic_message(&*panic)),
                    Err(join) => format!("task `{task}` did not finish: {join}"),
                }
                .into())
            })
        }
        Err(_) => run_sync_intent(intent),
    }
}

/// Logs, when dropped, that a sync task was left running by its job.
struct Abandoned(Option<&'static str>);

impl Drop for Abandoned {
    fn drop(&mut self) {
        if let Some(task) = self.0 {
            tracing::error!(
                target: "airlock::worker",
                task,
                "the worker dropped a job whose sync task is still running on the blocking pool; \
                 the task runs to its end, and the queue may hand the job to another worker \
                 once the orphan window passes: it can run twice"
            );
        }
    }
}

fn clip(error: &(impl fmt::Display + ?Sized)) -> Clipped<'_, impl fmt::Display + ?Sized> {
    Clipped::new(error, ERROR_TEXT_BYTES)
}

/// An [`AbortError`] whose text is clipped.
fn abort(error: impl fmt::Display) -> BoxDynError {
    Box::new(AbortError::new(clip(&error).to_string()))
}

/// A task's error as the queue records it: the text clipped, the error
/// itself kept as the source.
#[derive(Debug)]
struct JobFailed(BoxError);

impl fmt::Display for JobFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        clip(&self.0).fmt(f)
    }
}

impl std::error::Error for JobFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// The field [`JobCodec`] puts the decoding error under.
const UNDECODABLE: &str = "airlock.undecodable";

fn undecodable_reason(job: &serde_json::Value) -> Option<&str> {
    job.as_object()
        .filter(|fields| fields.len() == 1)?
        .get(UNDECODABLE)?
        .as_str()
}

/// Everything [`handle`] does to a job before running it: the envelope's
/// checks, the registry lookup and the arguments' decoding. A job it rejects
/// can never succeed, so the error is an [`AbortError`]; so does a panic in
/// decoding (user `Deserialize` code runs here), which must not unwind into
/// the worker.
fn decode(job: serde_json::Value) -> Result<Intent, AbortError> {
    let decoded = std::panic::catch_unwind(AssertUnwindSafe(|| decode_checked(job)));
    decoded.unwrap_or_else(|panic| {
        let reason = format!(
            "decoding the job's arguments panicked: {}",
            panic_message(&*panic)
        );
        tracing::error!(target: "airlock::worker", reason = %clip(&reason), "job aborted: it can never succeed");
        Err(AbortError::new(clip(&reason).to_string()))
    })
}

fn decode_checked(job: serde_json::Value) -> Result<Intent, AbortError> {
    if let Some(reason) = undecodable_reason(&job) {
        tracing::error!(target: "airlock::worker", reason = %clip(reason), "job aborted: its payload cannot be read");
        return Err(AbortError::new(format!(
            "the job's payload is not an airlock envelope: {}",
            clip(reason)
        )));
    }
    Envelope::from_value(job)
        .and_then(Envelope::into_intent)
        .map_err(|error| {
            tracing::error!(target: "airlock::worker", error = %clip(&error), "job aborted: it can never succeed");
            AbortError::new(clip(&error).to_string())
        })
}

/// What [`JobCodec`] makes of a job's bytes: their JSON, or a marker object
/// carrying why not (not JSON, or over the payload limit, checked before
/// parsing) for [`decode`] to abort on.
fn parse(bytes: &[u8]) -> serde_json::Value {
    let limit = crate::config::with_current(|config| config.max_payload_bytes);
    if bytes.len() > limit {
        return serde_json::json!({ UNDECODABLE: format!(
            "it is {} bytes, over the {limit}-byte limit (Config::max_payload_bytes); it was \
             not parsed",
            bytes.len()
        ) });
    }
    serde_json::from_slice(bytes).unwrap_or_else(
        |error| serde_json::json!({ UNDECODABLE: format!("it is not JSON: {error}") }),
    )
}

/// A worker's whole decoding path for one job's bytes, without running the
/// task: [`JobCodec`]'s parse, then the same checks, registry lookup and
/// argument decoding as [`handle`] (it is the very code `handle` runs).
///
/// Exists for the fuzz targets in `airlock/fuzz`, which must exercise what a
/// worker does with hostile bytes rather than a copy of it. Not public API.
///
/// # Errors
/// The [`AbortError`] `handle` would return for a job that can never succeed.
#[doc(hidden)]
pub fn decode_job(bytes: &[u8]) -> Result<Intent, AbortError> {
    decode(parse(bytes))
}

/// The codec airlock's workers read jobs with: JSON, except that bytes that
/// are not JSON decode to a job [`handle`] aborts, instead of an error that
/// stops the worker.
///
/// Use it on any apalis storage whose jobs are JSON bytes (`Vec<u8>`) when
/// building your own worker: `storage.with_codec(JobCodec)` (apalis's
/// `BackendExt`). `RedisQueue::monitor` already does.
///
/// ```
/// use airlock::queue::apalis::prelude::Codec;
/// use airlock::worker::JobCodec;
///
/// let job: serde_json::Value = JobCodec.decode(&b"\xffnot json".to_vec()).unwrap();
/// assert!(job.get("v").is_none(), "not an envelope: the handler aborts it");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct JobCodec;

impl Codec<serde_json::Value> for JobCodec {
    type Error = serde_json::Error;
    type Compact = Vec<u8>;

    fn encode(&self, job: &serde_json::Value) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(job)
    }

    fn decode(&self, bytes: &Vec<u8>) -> Result<serde_json::Value, serde_json::Error> {
        Ok(parse(bytes))
    }
}

/// A task failed on its last allowed attempt.
#[derive(Debug)]
struct AttemptsExhausted {
    task: &'static str,
    attempt: usize,
    max_attempts: usize,
    error: BoxError,
}

impl fmt::Display for AttemptsExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "task `{}` failed on attempt {} and its attempts are exhausted (max_attempts {}); \
             it will not be retried: {}",
            self.task,
            self.attempt,
            self.max_attempts,
            clip(&self.error)
        )
    }
}

impl std::error::Error for AttemptsExhausted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.error)
    }
}

/// How to run the workers of one process on a queue: how many, how many jobs
/// each runs at once, which queue, and how often an idle worker polls.
///
/// Each backend turns these into a supervised apalis
/// [`Monitor`](apalis::prelude::Monitor) (for example
/// [`SqliteQueue::monitor`](crate::queue::SqliteQueue::monitor)): workers get
/// unique names (`{name}-{pid}-{index}`, so a restarted process never collides
/// with its predecessor's registration) and are restarted after a backend
/// error (a lost connection, a row apalis cannot read) instead of dying,
/// after a backoff that grows with each restart
/// ([`restart_backoff`](WorkerOptions::restart_backoff)), so a backend that
/// keeps failing cannot spin a worker in a tight loop.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), airlock::BoxError> {
/// use std::time::Duration;
///
/// use airlock::queue::SqliteQueue;
/// use airlock::worker::WorkerOptions;
///
/// let options = WorkerOptions::new("checkout")
///     .workers(2)
///     .concurrency(4)
///     .queue("emails")
///     .poll_interval(Duration::from_millis(250))
///     .heartbeat(Duration::from_secs(10))
///     .missed_heartbeats(3);
/// // A worker silent for 30 s has its jobs re-run by another.
/// assert_eq!(options.orphan_window(), Some(Duration::from_secs(30)));
/// assert!(options.worker_name(1).starts_with("checkout-"));
///
/// let queue = SqliteQueue::connect("sqlite::memory:").await?;
/// let _monitor = queue.monitor(options); // run it with `.run().await`
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub(crate) name: String,
    pub(crate) workers: usize,
    pub(crate) concurrency: usize,
    pub(crate) queue: String,
    pub(crate) poll_interval: std::time::Duration,
    pub(crate) heartbeat: Option<Duration>,
    pub(crate) missed_heartbeats: Option<usize>,
}

impl WorkerOptions {
    /// Workers named after `name`, with the defaults: 1 worker, 8 jobs at
    /// once, queue [`DEFAULT_QUEUE`], polling
    /// every 100 ms when idle, and the backend's own heartbeat settings
    /// (apalis: a heartbeat every 30 s; 2 missed heartbeats on SQLite, 10 on
    /// PostgreSQL and Redis, before another worker re-runs a silent
    /// worker's jobs).
    pub fn new(name: impl Into<String>) -> Self {
        WorkerOptions {
            name: name.into(),
            workers: 1,
            concurrency: 8,
            queue: DEFAULT_QUEUE.to_owned(),
            poll_interval: std::time::Duration::from_millis(100),
            heartbeat: None,
            missed_heartbeats: None,
        }
    }

    /// How many workers this process runs (at least 1).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// How many jobs each worker runs at once (at least 1; apalis's own
    /// default is unbounded).
    pub fn concurrency(mut self, jobs: usize) -> Self {
        self.concurrency = jobs.max(1);
        self
    }

    /// The queue to consume.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// How often an idle worker looks for new jobs. Without polling an apalis
    /// worker whose queue was empty waits for its 30 s heartbeat.
    pub fn poll_interval(mut self, interval: std::time::Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How often each worker tells the queue it is alive (apalis's default:
    /// 30 s; between 1 s and 1 h). Sync tasks run on a blocking pool, so a
    /// long task does not delay it.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = Some(interval.clamp(Duration::from_secs(1), Duration::from_secs(3600)));
        self
    }

    /// How many heartbeats a worker may miss before the jobs it holds count
    /// as orphaned and another worker of the queue re-runs them (between 2
    /// and 1,000: with 1, a live worker whose heartbeat lands a moment late
    /// would lose its jobs). The orphan window is `heartbeat ×
    /// missed_heartbeats`: a worker stalled (not dead) for longer than that
    /// sees its job run again elsewhere, so keep it well above the pauses
    /// you expect.
    pub fn missed_heartbeats(mut self, missed: usize) -> Self {
        self.missed_heartbeats = Some(missed.clamp(2, 1_000));
        self
    }

    /// How long a worker may go silent before its jobs are re-run elsewhere,
    /// when both settings are given (otherwise the backend's defaults rule).
    pub fn orphan_window(&self) -> Option<Duration> {
        let missed = u32::try_from(self.missed_heartbeats?).ok()?;
        self.heartbeat?.checked_mul(missed)
    }

    /// Sets the heartbeat settings that were given on a backend's config,
    /// through its own setters; the others keep the backend's defaults.
    pub(crate) fn apply_heartbeat<C>(
        &self,
        mut config: C,
        heartbeat: fn(C, Duration) -> C,
        missed: fn(C, usize) -> C,
    ) -> C {
        if let Some(interval) = self.heartbeat {
            config = heartbeat(config, interval);
        }
        if let Some(count) = self.missed_heartbeats {
            config = missed(config, count);
        }
        config
    }

    /// How an idle worker polls: every `poll_interval`. Use it in place of
    /// apalis's `poll_with_interval`, which can miss its next tick (see
    /// [`PollEvery`]).
    pub(crate) fn poll_strategy(&self) -> PollEvery {
        PollEvery(IntervalStrategy::new(self.poll_interval))
    }

    /// Waits `backoff` (from [`RestartStreaks::backoff`]) before a
    /// restarted worker starts: each monitor runs it as the backend's
    /// `before_start` hook, so the wait comes before the worker registers
    /// and fetches again. A shutdown meanwhile does not wait for it.
    pub(crate) async fn wait_before_restart(backoff: Duration) {
        if !backoff.is_zero() {
            tokio::time::sleep(backoff).await;
        }
    }

    /// How long a worker waits before it starts again after `restarts`
    /// restarts in quick succession: nothing the first time, then 100 ms
    /// doubling up to 30 s. (A worker that ran for a minute before it
    /// stopped starts counting again, so one failure a day costs 100 ms.) A backend that fails every fetch (a broken table, a due batch
    /// apalis-redis cannot move) restarted the worker in a tight loop
    /// before: about 700 restarts a second on SQLite, each registering a new
    /// worker.
    pub fn restart_backoff(restarts: usize) -> Duration {
        const FIRST: Duration = Duration::from_millis(100);
        const CAP: Duration = Duration::from_secs(30);
        match restarts {
            0 => Duration::ZERO,
            n => {
                let doublings = u32::try_from(n - 1).unwrap_or(u32::MAX).min(16);
                FIRST.saturating_mul(1 << doublings).min(CAP)
            }
        }
    }

    /// The name of worker `index` in this process.
    pub fn worker_name(&self, index: usize) -> String {
        format!("{}-{}-{index}", self.name, std::process::id())
    }

    /// The name of worker `index` after `restarts` restarts: a restarted
    /// worker takes a new name, because apalis refuses a name seen alive in
    /// the last few heartbeats (Redis, SQLite) or still holding its advisory
    /// lock (PostgreSQL), and a worker that stopped on an error never
    /// unregisters its name.
    pub(crate) fn restarted_name(&self, index: usize, restarts: usize) -> String {
        let name = self.worker_name(index);
        if restarts == 0 {
            name
        } else {
            format!("{name}-restart{restarts}")
        }
    }

    /// A monitor that restarts any worker that stops on an error, and logs it.
    pub(crate) fn monitor(&self) -> apalis::prelude::Monitor {
        apalis::prelude::Monitor::new().should_restart(|ctx, error| {
            let restarts = ctx.restarts() + 1;
            tracing::warn!(
                target: "airlock::worker",
                worker = %ctx.name(),
                restarts,
                backoff_ms = Self::restart_backoff(restarts).as_millis() as u64,
                error = %clip(error),
                "worker stopped on an error; restarting it after the backoff"
            );
            true
        })
    }
}

/// How many times each worker of a monitor was restarted in quick
/// succession: apalis counts a worker's restarts over its whole life, and a
/// backoff grown from that count would make a long-lived worker wait 30 s
/// after every rare failure.
#[derive(Debug, Clone, Default)]
pub(crate) struct RestartStreaks(
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<usize, (std::time::Instant, usize)>>>,
);

impl RestartStreaks {
    /// A worker that ran this long before it stopped starts a new streak.
    const HEALTHY: Duration = Duration::from_secs(60);

    /// The wait before worker `index` starts for the time after `restarts`
    /// restarts ([`WorkerOptions::restart_backoff`] of the streak).
    pub(crate) fn backoff(&self, index: usize, restarts: usize) -> Duration {
        let now = std::time::Instant::now();
        let mut streaks = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let streak = match streaks.get(&index) {
            _ if restarts == 0 => 0,
            Some((started, streak)) if now.duration_since(*started) < Self::HEALTHY => streak + 1,
            _ => 1,
        };
        streaks.insert(index, (now, streak));
        WorkerOptions::restart_backoff(streak)
    }
}

/// apalis's interval strategy, fixed so an idle worker really polls on every
/// tick.
///
/// When its delay fires, apalis 1.0's `IntervalStrategy` arms the next delay
/// without polling it, so no timer holds the worker's waker. If the fetch that
/// tick triggers completes within the same poll (its reply arrived while the
/// delay was firing), the worker parks with nothing to wake it but its
/// heartbeat, 30 s later. Polling the fresh delay once registers the waker.
#[derive(Debug, Clone)]
pub(crate) struct PollEvery(IntervalStrategy);

impl PollStrategy for PollEvery {
    fn poll_drive(&mut self, cx: &mut Context<'_>, snapshot: &PollSnapshot) -> Poll<Option<()>> {
        let tick = self.0.poll_drive(cx, snapshot);
        if tick.is_ready() && self.0.poll_drive(cx, snapshot).is_ready() {
            // A zero interval: the next tick is due at once, so poll again.
            cx.waker().wake_by_ref();
        }
        tick
    }
}

/// Polls when a notification arrives or the interval ticks, whichever comes
/// first: a backend that announces new jobs (PostgreSQL's `LISTEN/NOTIFY`)
/// wakes the worker at once, and the interval remains the fallback for a
/// missed or lost notification (and for jobs that become due later, which
/// announce nothing). If the notifications end (their connection failed),
/// the interval alone drives the worker.
#[cfg(feature = "apalis-postgres")]
pub(crate) struct PollOrNotified<N> {
    interval: PollEvery,
    notified: Option<N>,
}

#[cfg(feature = "apalis-postgres")]
impl<N> PollOrNotified<N> {
    pub(crate) fn new(interval: PollEvery, notified: N) -> Self {
        PollOrNotified {
            interval,
            notified: Some(notified),
        }
    }
}

#[cfg(feature = "apalis-postgres")]
impl<N> fmt::Debug for PollOrNotified<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollOrNotified")
            .field("listening", &self.notified.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "apalis-postgres")]
impl<N: PollStrategy> PollStrategy for PollOrNotified<N> {
    fn poll_drive(&mut self, cx: &mut Context<'_>, snapshot: &PollSnapshot) -> Poll<Option<()>> {
        // Every waiting notification is taken now and counts as one wake:
        // each insert announces itself to every worker, and reading one per
        // fetch let them pile up on the connection (and on the server)
        // under load, then woke the worker for empty fetches. Both
        // strategies end up Pending or done, so both hold the waker.
        let mut notified = Poll::Pending;
        while let Some(stream) = self.notified.as_mut() {
            match stream.poll_drive(cx, snapshot) {
                Poll::Ready(Some(())) => notified = Poll::Ready(Some(())),
                Poll::Ready(None) => {
                    tracing::warn!(target: "airlock::worker", "job notifications ended; polling only");
                    self.notified = None;
                }
                Poll::Pending => break,
            }
        }
        let ticked = self.interval.poll_drive(cx, snapshot);
        match (notified, ticked) {
            (Poll::Ready(Some(())), _) | (_, Poll::Ready(Some(()))) => Poll::Ready(Some(())),
            _ => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};
    use std::time::{Duration, Instant};

    use super::*;

    #[derive(Default)]
    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// Polls `strategy` until a tick is ready, with `waker`.
    fn tick(strategy: &mut PollEvery, waker: &Waker) {
        let mut cx = Context::from_waker(waker);
        let deadline = Instant::now() + Duration::from_secs(10);
        while strategy
            .poll_drive(&mut cx, &PollSnapshot::new())
            .is_pending()
        {
            assert!(Instant::now() < deadline, "the first tick never came");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn restart_backoff_doubles_from_100_ms_to_a_30_s_cap() {
        let backoff = WorkerOptions::restart_backoff;
        assert_eq!(backoff(0), Duration::ZERO, "the first start does not wait");
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(5), Duration::from_millis(1_600));
        assert_eq!(backoff(10), Duration::from_secs(30));
        assert_eq!(backoff(usize::MAX), Duration::from_secs(30));
    }

    #[test]
    fn a_tick_arms_a_timer_that_wakes_the_worker_for_the_next_one() {
        let mut strategy = WorkerOptions::new("t")
            .poll_interval(Duration::from_millis(10))
            .poll_strategy();
        tick(&mut strategy, Waker::noop());
        // The poll that saw the tick is the last one: nothing polls the
        // strategy again unless its timer wakes this waker.
        let flag = Arc::new(Flag::default());
        tick(&mut strategy, &Waker::from(flag.clone()));
        // Forget wakes that led to this tick: only the next one counts.
        flag.0.store(false, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !flag.0.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            flag.0.load(Ordering::SeqCst),
            "no timer woke the worker after a tick: it would sleep until its heartbeat"
        );
    }
}
