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
//! * A task error or panic fails the job; the queue retries it up to its
//!   `max_attempts`.

use apalis::prelude::{AbortError, BoxDynError};

use crate::envelope::Envelope;

/// The apalis handler: runs one job carrying an airlock envelope.
///
/// Use it with apalis's `WorkerBuilder` on a storage of `serde_json::Value`:
/// `WorkerBuilder::new("airlock-1").backend(storage).build(airlock::worker::handle)`.
///
/// # Errors
/// An [`AbortError`] for a job that can never succeed; the task's own error
/// (or panic message) otherwise.
pub async fn handle(job: serde_json::Value) -> Result<(), BoxDynError> {
    let intent = Envelope::from_value(job)
        .and_then(Envelope::into_intent)
        .map_err(|error| -> BoxDynError {
            tracing::error!(target: "airlock::worker", %error, "job aborted: it can never succeed");
            Box::new(AbortError::new(error))
        })?;
    let task = intent.name();
    crate::executor::run_intent(intent).await.map_err(|error| {
        tracing::warn!(target: "airlock::worker", task, %error, "task failed");
        error
    })
}
