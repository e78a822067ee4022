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
//!   `max_attempts` (the envelope's, else
//!   [`DEFAULT_MAX_ATTEMPTS`](crate::queue::DEFAULT_MAX_ATTEMPTS)) or later
//!   aborts the job with an error saying its attempts are exhausted. A job with
//!   `max_attempts = 3` therefore runs at most 3 times on every backend: the
//!   SQL backends count attempts in the row and would stop there anyway (the
//!   last failure is now `Killed` rather than `Failed`), while apalis-redis
//!   ignores a task's `max_attempts` and would retry up to 25 times.

use std::fmt;

use apalis::prelude::{AbortError, Attempt, BoxDynError};

use crate::envelope::Envelope;
use crate::error::BoxError;
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
    let intent = Envelope::from_value(job)
        .and_then(Envelope::into_intent)
        .map_err(|error| -> BoxDynError {
            tracing::error!(target: "airlock::worker", %error, "job aborted: it can never succeed");
            Box::new(AbortError::new(error))
        })?;
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

    /// The name of worker `index` in this process.
    pub fn worker_name(&self, index: usize) -> String {
        format!("{}-{}-{index}", self.name, std::process::id())
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

