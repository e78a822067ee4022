//! Dispatch to a job queue that other processes (or machines) consume.
//!
//! An intent leaves the process as an [`Envelope`]
//! inside an apalis task whose id is a fresh ULID (the apalis SQL backends
//! require one) and whose attempts, priority and schedule mirror the intent's
//! [`DispatchOptions`](crate::DispatchOptions). A worker reads the envelope and
//! runs the task by name ([`worker`](crate::worker)).
//!
//! Backends, each behind its own cargo feature:
//! * `apalis-sqlite`: `SqliteQueue`, an embedded file-backed queue.
//! * `apalis-postgres`: `PostgresQueue`, a PostgreSQL queue that worker
//!   processes on any machine consume; co-commit inside your transaction.
//! * `apalis-redis`: `RedisQueue`, a Redis server shared by many processes;
//!   no co-commit (dispatch after your transaction commits), priority ignored.

#[cfg(feature = "apalis-postgres")]
mod postgres;
#[cfg(feature = "apalis-redis")]
mod redis;
#[cfg(feature = "apalis-sqlite")]
mod sqlite;

#[cfg(feature = "apalis-postgres")]
pub use postgres::PostgresQueue;
#[cfg(feature = "apalis-redis")]
pub use redis::RedisQueue;
#[cfg(feature = "apalis-sqlite")]
pub use sqlite::SqliteQueue;

/// The apalis crates airlock is built against, so workers use the same versions.
pub use apalis;
#[cfg(feature = "apalis-postgres")]
pub use apalis_postgres;
#[cfg(feature = "apalis-redis")]
pub use apalis_redis;
#[cfg(feature = "apalis-sqlite")]
pub use apalis_sqlite;

use apalis::prelude::{Task, TaskBuilder, TaskId};

use crate::envelope::Envelope;
use crate::error::Error;
use crate::executor::DispatchError;
use crate::intent::Intent;

pub use crate::envelope::{DEFAULT_MAX_ATTEMPTS, DEFAULT_QUEUE};

/// The refusal of every queue executor's synchronous `dispatch`: pushing is
/// I/O, so it needs an async scope. Hands every intent back.
pub(crate) fn needs_async_scope(backend: &str, intents: Vec<Intent>) -> DispatchError {
    DispatchError::stopped_at(
        0,
        format!(
            "{backend} pushes with async I/O and cannot dispatch from a synchronous scope; \
             flush from an async scope (#[airlock::scoped] async fn, airlock::scope_async)"
        ),
        intents,
    )
}

/// A SQL queue's `dispatch_async`: one transaction of its own for the whole
/// flush, written by the same push a co-commit transaction scope uses. Every
/// intent is queued, or none is and all are handed back in the error.
///
/// One exception: when `COMMIT` was sent and no answer came (the connection
/// dropped), the database may have committed. Then every intent is in doubt
/// (reported interrupted, handed back in [`DispatchError::in_doubt`]), never
/// reported not attempted. An error the database answered `COMMIT` with (a
/// deferred constraint, a serialization failure) means it rolled back.
#[cfg(any(feature = "apalis-sqlite", feature = "apalis-postgres"))]
pub(crate) async fn push_in_own_transaction<DB: crate::tx::CoCommitDatabase>(
    pool: &sqlx::Pool<DB>,
    backend: &str,
    intents: Vec<Intent>,
) -> Result<(), DispatchError> {
    let mut tx = match pool.begin().await {
        Ok(tx) => tx,
        Err(error) => return Err(nothing_queued(backend, error.into(), intents)),
    };
    if let Err(error) = DB::__push(&mut tx, &intents).await {
        return Err(nothing_queued(backend, error, intents));
    }
    match tx.commit().await {
        Ok(()) => Ok(()),
        Err(error @ sqlx::Error::Database(_)) => {
            Err(nothing_queued(backend, error.into(), intents))
        }
        Err(error) => Err(DispatchError::in_doubt_at(
            0,
            format!(
                "the {backend} queue's COMMIT got no answer, so the jobs may or may not \
                 have been queued: {error}"
            ),
            intents,
            Vec::new(),
        )),
    }
}

#[cfg(any(feature = "apalis-sqlite", feature = "apalis-postgres"))]
fn nothing_queued(
    backend: &str,
    error: crate::error::BoxError,
    intents: Vec<Intent>,
) -> DispatchError {
    DispatchError::stopped_at(
        0,
        format!("pushing to the {backend} queue failed; nothing was queued: {error}"),
        intents,
    )
}

/// One queue's share of a flush: its name and its encoded tasks, in order.
#[cfg(any(feature = "apalis-sqlite", feature = "apalis-postgres"))]
pub(crate) type QueueBatch<'a> = (&'a str, Vec<Task<Vec<u8>>>);

/// Encodes every intent of a flush (so an encoding error writes nothing) and
/// groups the tasks by queue, first-seen queue first, FIFO within each: one
/// push per queue for the SQL backends, whose whole flush is one transaction.
#[cfg(any(feature = "apalis-sqlite", feature = "apalis-postgres"))]
pub(crate) fn tasks_by_queue(intents: &[Intent]) -> Result<Vec<QueueBatch<'_>>, Error> {
    let mut batches: Vec<QueueBatch<'_>> = Vec::new();
    for intent in intents {
        let queue = intent.options().queue.as_deref().unwrap_or(DEFAULT_QUEUE);
        let task = to_task(intent)?;
        match batches.iter_mut().find(|(q, _)| *q == queue) {
            Some((_, tasks)) => tasks.push(task),
            None => batches.push((queue, vec![task])),
        }
    }
    Ok(batches)
}

/// Builds the apalis task carrying `intent`: envelope as JSON, ULID id,
/// attempts, priority and schedule from the intent's options.
pub(crate) fn to_task(intent: &Intent) -> Result<Task<Vec<u8>>, Error> {
    let id = ulid::Ulid::generate();
    // Straight to bytes: no owned envelope, and the id's text on the stack.
    let mut id_text = [0; ulid::ULID_LEN];
    let payload = Envelope::encode_intent(intent, id.array_to_str(&mut id_text))?;
    // Checked here too: `build()` skips the enqueue-time check, and apalis's
    // own schedule arithmetic panics past the clock's range or before 1970.
    let due = if intent.is_scheduled() {
        intent.due_at(std::time::SystemTime::now())?
    } else {
        None
    };
    let options = intent.options();
    let mut builder = TaskBuilder::new(payload)
        .task_id(TaskId::from_ulid(id))
        // At least one: a row allowing 0 attempts would still be fetched
        // (apalis checks the count only for retries).
        .max_attempts(options.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS).max(1) as usize)
        // apalis priorities are unsigned (higher first): negative ones run last.
        .priority(options.priority.unwrap_or(0).max(0) as usize);
    if let Some(at) = due {
        // Never before the epoch: `due_at` is after now.
        let secs = at
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.as_secs())
            .unwrap_or_default();
        builder = builder.run_at_timestamp(secs);
    }
    Ok(builder.build())
}
