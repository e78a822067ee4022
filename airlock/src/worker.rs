//! Workers: consume a queue and run each job's task by name.
//!
//! The handler reads the job's [`Envelope`], checks its version, looks the
//! task up in the [registry](crate::registry()), decodes the arguments and runs
//! the task with [`run_intent`](crate::executor::run_intent): in its own scope,
//! so intents it enqueues cascade as they would in process.
//!
//! * A job that is not a valid envelope, names an unknown task, or carries
//!   undecodable arguments can never succeed: it is aborted (not retried) with
//!   an error that says why.
//! * A task error or panic fails the job, and the queue retries it.
//! * The worker itself enforces the job's attempt budget: a failure on attempt
//!   `max_attempts` (the envelope's, else [`DEFAULT_MAX_ATTEMPTS`]) or later
//!   aborts the job with an error saying its attempts are exhausted. A job with
//!   `max_attempts = 3` therefore runs at most 3 times on every backend: the
//!   SQL backends count attempts in the row and would stop there anyway (the
//!   last failure is `Killed` rather than `Failed`), while apalis-redis ignores
//!   a task's `max_attempts` and would retry up to 25 times.
//! * apalis stops a worker when a job's bytes do not decode, and the job stays
//!   claimed by the dead worker until orphan recovery hands it to the next one:
//!   one bad payload would stall the queue. Workers read jobs with
//!   [`JobCodec`], which turns a payload that is not JSON into a job the
//!   handler aborts.

use std::fmt;
use std::task::{Context, Poll};

use apalis::prelude::{
    AbortError, Attempt, BoxDynError, Codec, IntervalStrategy, PollSnapshot, PollStrategy,
};

use crate::envelope::Envelope;
use crate::error::BoxError;
use crate::intent::Intent;
use crate::queue::DEFAULT_MAX_ATTEMPTS;

/// The apalis handler: runs one job carrying an airlock envelope.
///
/// Use it with apalis's `WorkerBuilder` on a storage of `serde_json::Value`:
/// `WorkerBuilder::new("airlock-1").backend(storage).build(airlock::worker::handle)`.
/// apalis passes the job's [`Attempt`] (1 on the first run): a failure on the
/// job's last allowed attempt aborts it instead of leaving it to the backend's
/// retry policy.
///
/// # Errors
/// An [`AbortError`] for a job that can never succeed, or that failed on its
/// last allowed attempt; the task's own error (or panic message) otherwise.
pub async fn handle(job: serde_json::Value, attempt: Attempt) -> Result<(), BoxDynError> {
    let intent = decode(job)?;
    let task = intent.name();
    let max_attempts = intent
        .options()
        .max_attempts
        .unwrap_or(DEFAULT_MAX_ATTEMPTS);
    let Err(error) = crate::executor::run_intent(intent).await else {
        return Ok(());
    };
    // Read after the run: apalis counts the attempt when the job starts.
    let attempt = attempt.current();
    if attempt >= max_attempts as usize {
        tracing::error!(
            target: "airlock::worker",
            task, attempt, max_attempts, %error,
            "task failed on its last attempt; the job is aborted"
        );
        return Err(Box::new(AbortError::new(AttemptsExhausted {
            task,
            attempt,
            max_attempts,
            error,
        })));
    }
    tracing::warn!(target: "airlock::worker", task, attempt, max_attempts, %error, "task failed");
    Err(error)
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
/// can never succeed, so the error is an [`AbortError`].
fn decode(job: serde_json::Value) -> Result<Intent, AbortError> {
    if let Some(reason) = undecodable_reason(&job) {
        tracing::error!(target: "airlock::worker", reason, "job aborted: its payload is not JSON");
        return Err(AbortError::new(format!(
            "the job's payload is not JSON, so it is not an airlock envelope: {reason}"
        )));
    }
    Envelope::from_value(job)
        .and_then(Envelope::into_intent)
        .map_err(|error| {
            tracing::error!(target: "airlock::worker", %error, "job aborted: it can never succeed");
            AbortError::new(error)
        })
}

/// What [`JobCodec`] makes of a job's bytes: their JSON, or a marker object
/// carrying the parse error for [`decode`] to abort on.
fn parse(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|error| serde_json::json!({ UNDECODABLE: error.to_string() }))
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
    max_attempts: u32,
    error: BoxError,
}

impl fmt::Display for AttemptsExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "task `{}` failed on attempt {} and its attempts are exhausted (max_attempts {}); \
             it will not be retried: {}",
            self.task, self.attempt, self.max_attempts, self.error
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
/// error (a lost connection, a row apalis cannot read) instead of dying.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub(crate) name: String,
    pub(crate) workers: usize,
    pub(crate) concurrency: usize,
    pub(crate) queue: String,
    pub(crate) poll_interval: std::time::Duration,
}

impl WorkerOptions {
    /// Workers named after `name`, with the defaults: 1 worker, 8 jobs at
    /// once, queue [`DEFAULT_QUEUE`](crate::queue::DEFAULT_QUEUE), polling
    /// every 100 ms when idle.
    pub fn new(name: impl Into<String>) -> Self {
        WorkerOptions {
            name: name.into(),
            workers: 1,
            concurrency: 8,
            queue: crate::queue::DEFAULT_QUEUE.to_owned(),
            poll_interval: std::time::Duration::from_millis(100),
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

    /// How an idle worker polls: every `poll_interval`. Use it in place of
    /// apalis's `poll_with_interval`, which can miss its next tick (see
    /// [`PollEvery`]).
    pub(crate) fn poll_strategy(&self) -> PollEvery {
        PollEvery(IntervalStrategy::new(self.poll_interval))
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
            tracing::warn!(
                target: "airlock::worker",
                worker = %ctx.name(),
                %error,
                "worker stopped on an error; restarting it"
            );
            true
        })
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
