//! Executors carry out what a flush lets through.
//!
//! An executor receives the surviving intents of one flush, in FIFO order, and
//! dispatches them: runs them in-process ([`InProcess`], the default) or hands
//! them to a job queue. It is fail-fast: on the first failure it stops and
//! reports how far it got, handing back the intents it never attempted.

pub(crate) mod in_process;
#[cfg(feature = "tokio")]
mod spawn;

use std::fmt;

pub use in_process::run_intent;
#[cfg(feature = "tokio")]
pub use spawn::TokioExecutor;

use std::any::Any;
use std::panic::Location;

use crate::error::BoxError;
use crate::intent::Intent;
/// A boxed, `Send` future: what [`Executor::dispatch_async`] returns.
pub use crate::task::BoxFuture;
use crate::task::{ErasedArgs, TaskDef};

/// Dispatches the intents of a flush.
///
/// Implement [`dispatch`](Self::dispatch); override
/// [`dispatch_async`](Self::dispatch_async) when the executor does I/O or can
/// await async tasks (the default runs `dispatch` inline).
pub trait Executor: fmt::Debug + Send + Sync + 'static {
    /// Dispatches `intents` in order, from a synchronous scope.
    ///
    /// # Errors
    /// A [`DispatchError`] saying how many leading intents were dispatched,
    /// and handing back the ones never attempted.
    fn dispatch(&self, intents: Vec<Intent>) -> Result<(), DispatchError>;

    /// Dispatches `intents` in order, from an async scope.
    ///
    /// # Errors
    /// As [`dispatch`](Self::dispatch).
    fn dispatch_async(&self, intents: Vec<Intent>) -> BoxFuture<'_, Result<(), DispatchError>> {
        let result = self.dispatch(intents);
        Box::pin(std::future::ready(result))
    }
}

impl<E: Executor + ?Sized> Executor for std::sync::Arc<E> {
    fn dispatch(&self, intents: Vec<Intent>) -> Result<(), DispatchError> {
        (**self).dispatch(intents)
    }
    fn dispatch_async(&self, intents: Vec<Intent>) -> BoxFuture<'_, Result<(), DispatchError>> {
        (**self).dispatch_async(intents)
    }
}

/// An executor stopped part-way: the first `dispatched` intents went out, then
/// it failed.
///
/// The intents of the flush, in order, are: `dispatched` ones that went out,
/// then either the one that failed (`attempted_failed`) or the `in_doubt`
/// ones, then the `not_attempted` ones.
#[derive(Debug)]
pub struct DispatchError {
    /// How many leading intents were dispatched.
    pub dispatched: usize,
    /// Whether the intent right after those was attempted and failed (a task
    /// error) rather than not attempted at all (e.g. a batch the broker refused).
    pub attempted_failed: bool,
    /// The intents right after the dispatched ones that were handed to a
    /// broker that never answered (the connection dropped or timed out after
    /// the request was sent): they may or may not have been dispatched, and
    /// are reported [`Fate::Interrupted`](crate::Fate::Interrupted). Handed
    /// back apart from `not_attempted`, since retrying them may dispatch them
    /// twice. Empty unless built with [`in_doubt_at`](Self::in_doubt_at).
    pub in_doubt: Vec<Intent>,
    /// What went wrong.
    pub source: BoxError,
    /// The intents never attempted, in order, handed back for a retry.
    pub not_attempted: Vec<Intent>,
}

impl DispatchError {
    /// The intent after the first `dispatched` ones was attempted and failed;
    /// `rest` were never attempted.
    pub fn failed_at(dispatched: usize, source: impl Into<BoxError>, rest: Vec<Intent>) -> Self {
        DispatchError {
            dispatched,
            attempted_failed: true,
            in_doubt: Vec::new(),
            source: source.into(),
            not_attempted: rest,
        }
    }

    /// Nothing after the first `dispatched` intents was attempted; all of `rest`
    /// is handed back (e.g. the broker refused the batch).
    pub fn stopped_at(dispatched: usize, source: impl Into<BoxError>, rest: Vec<Intent>) -> Self {
        DispatchError {
            dispatched,
            attempted_failed: false,
            in_doubt: Vec::new(),
            source: source.into(),
            not_attempted: rest,
        }
    }

    /// After the first `dispatched` intents, `in_doubt` were sent to a broker
    /// whose answer never came, so whether it took them is unknown; `rest`
    /// were never attempted.
    pub fn in_doubt_at(
        dispatched: usize,
        source: impl Into<BoxError>,
        in_doubt: Vec<Intent>,
        rest: Vec<Intent>,
    ) -> Self {
        DispatchError {
            dispatched,
            attempted_failed: false,
            in_doubt,
            source: source.into(),
            not_attempted: rest,
        }
    }
}

/// Runs each intent's task in this process, in FIFO order, when the scope
/// flushes: sync tasks inline; async tasks awaited when the scope is async.
///
/// * **No serialization:** the typed arguments move straight into the function.
/// * **Worker semantics:** each task runs inside its own outermost scope with
///   the configured defaults, exactly as a queue worker runs it, so intents a
///   task enqueues are dispatched when it succeeds and discarded when it fails,
///   and `BlockTasks` can stop a re-entrant cascade. A cascade deeper than
///   [`Config::max_cascade_depth`](crate::Config::max_cascade_depth) fails.
/// * **Failures:** a task that returns `Err` or panics fails the flush
///   (fail-fast): later intents are not attempted and are handed back in the
///   error.
/// * An async task flushed from a sync scope cannot be awaited there; it fails
///   with an error that says to flush from an async scope.
#[derive(Debug, Clone, Copy, Default)]
pub struct InProcess;
// How `InProcess` runs tasks lives in `in_process.rs`, above the scopes it
// runs them in; the type is defined here, so the configuration (which names
// it as the default executor) depends on nothing above it.

/// What an executor or a worker needs of an [`Intent`] that code enqueueing
/// intents never does: building one from arguments decoded off the wire, and
/// taking one apart to run its task.
///
/// ```
/// use airlock::executor::IntentParts;
/// # #[airlock::task] fn send_email(user_id: u64) { let _ = user_id; }
/// let args = send_email::TASK.decode_args(serde_json::json!({ "user_id": 7 }))?;
/// let intent = airlock::Intent::from_decoded(send_email::TASK, args);
/// let (task, args) = intent.into_parts();
/// assert_eq!(task.name(), "send_email");
/// # let _ = args;
/// # Ok::<(), airlock::Error>(())
/// ```
pub trait IntentParts: sealed::Sealed {
    /// Builds an intent from already type-erased arguments, e.g. decoded by
    /// [`TaskDef::decode_args`]. The arguments must be the task's own `Args`
    /// type.
    #[track_caller]
    fn from_decoded(task: &'static TaskDef, args: ErasedArgs) -> Self;

    /// The type-erased arguments.
    fn erased_args(&self) -> &(dyn Any + Send + Sync);

    /// Splits the intent into its task and erased arguments.
    fn into_parts(self) -> (&'static TaskDef, ErasedArgs);
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::intent::Intent {}
}

impl IntentParts for Intent {
    #[track_caller]
    fn from_decoded(task: &'static TaskDef, args: ErasedArgs) -> Self {
        Intent::from_erased(task, args, None, Location::caller())
    }

    fn erased_args(&self) -> &(dyn Any + Send + Sync) {
        Intent::erased_args(self)
    }

    fn into_parts(self) -> (&'static TaskDef, ErasedArgs) {
        Intent::into_parts(self)
    }
}

/// Why [`InProcess`] refused a flush: the configuration forbids in-process
/// dispatch ([`Config::forbid_in_process`](crate::Config::forbid_in_process)).
/// The source of the [`DispatchFailure`](crate::DispatchFailure) that hands
/// every intent of the flush back.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "in-process dispatch is forbidden (Config::forbid_in_process), so `{task}` and the rest of \
     this flush were not run here; give the scope a queue executor (Scope::executor, \
     AirlockLayer::with_scope, a transaction scope) or make one the default (Config::executor)"
)]
pub struct InProcessForbidden {
    /// The first intent's task.
    pub task: &'static str,
}
