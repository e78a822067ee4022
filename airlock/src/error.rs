//! The one error type every fallible airlock operation returns.

use crate::flush::report::DispatchFailure;
use crate::intent::Intent;
use crate::scope::info::{ScopeInfo, ScopePhase};

pub use crate::config::error::ConfigError;
pub use crate::intent::ScheduleError;
pub use crate::policy::PolicyViolation;
pub use crate::registry::{DuplicateTask, LookupError, UnknownTask};
pub use crate::task::{ArgsError, BoxError};

/// `Result` with [`enum@Error`] as its error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when enqueueing, flushing or configuring.
///
/// Each message says what happened and what to do about it. The enum is
/// `#[non_exhaustive]`: match the variants you handle and keep a `_` arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `enqueue` was called where no scope is active.
    #[error(
        "cannot enqueue `{task}`: no airlock scope is active on this thread or task. \
         Run the caller inside a scope: #[airlock::scoped], airlock::scope(|| ...), \
         airlock::scope_async(...), or carry a scope into a spawned task with ScopeHandle::bind"
    )]
    NoScope {
        /// The task that was being enqueued.
        task: &'static str,
    },

    /// The scope already ended (flushed or discarded); it takes no more intents.
    #[error(
        "cannot enqueue `{task}`: {scope} has already {phase}; it takes no more intents. \
         Enqueue before the scope ends, or start a new scope for later work"
    )]
    ScopeClosed {
        /// The task that was being enqueued.
        task: &'static str,
        /// The scope that refused it.
        scope: ScopeInfo,
        /// What the scope did when it ended.
        phase: ScopePhase,
    },

    /// The scope already holds as many intents as it may
    /// ([`Config::max_intents_per_scope`](crate::Config::max_intents_per_scope));
    /// the intent was not buffered.
    #[error(
        "cannot enqueue `{task}`: {scope} already holds {limit} intents, its limit \
         (Config::max_intents_per_scope). A loop that enqueues without end? Otherwise work \
         in smaller scopes (one per batch), or raise the limit"
    )]
    ScopeFull {
        /// The task that was being enqueued.
        task: &'static str,
        /// The full scope.
        scope: ScopeInfo,
        /// The limit in force.
        limit: usize,
    },

    /// A policy's `on_enqueue` rejected the intent; it was not buffered.
    #[error(transparent)]
    PolicyViolation(#[from] PolicyViolation),

    /// `enqueue` was called from inside a policy method.
    #[error(
        "cannot enqueue `{task}` from inside a policy: policies observe and filter intents, \
         they must not create them. Move the enqueue out of the policy"
    )]
    PolicyEnqueue {
        /// The task that was being enqueued.
        task: &'static str,
    },

    /// `enqueue` was called while this thread holds the scope's intents for inspection.
    #[error(
        "cannot enqueue `{task}` while the scope's intents are borrowed for inspection on this \
         thread; drop the guard returned by `intents()` first"
    )]
    ScopeBusy {
        /// The task that was being enqueued.
        task: &'static str,
    },

    /// No task is registered under this name.
    #[error("{0}")]
    UnknownTask(#[from] UnknownTask),

    /// Two tasks were registered under the same name.
    #[error(transparent)]
    DuplicateTask(#[from] DuplicateTask),

    /// A task's arguments could not be decoded from, or encoded to, JSON.
    #[error(transparent)]
    Args(#[from] ArgsError),

    /// A payload is not an airlock envelope, or a malformed one.
    #[error("{reason}")]
    Envelope {
        /// What is wrong with it.
        reason: String,
    },

    /// An envelope was written in a format version this build does not read.
    #[error(
        "the job is an airlock envelope of version {found}, but this worker reads version \
         {supported}: deploy the new airlock version to workers before producers, or drain \
         the queue with the old workers"
    )]
    EnvelopeVersion {
        /// The version the envelope carries.
        found: u64,
        /// The version this build reads.
        supported: u32,
    },

    /// Configuration was invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// The executor failed during flush; nothing after the failure was dispatched.
    #[error(transparent)]
    Dispatch(Box<DispatchFailure>),

    /// A nested scope ended after its parent had ended; its intents were discarded.
    #[error(
        "{scope} ended after its parent {parent} had already ended, so its intents {lost:?} \
         were discarded. A scope carried into a spawned task must finish before the scope \
         it came from: await the task inside the parent scope"
    )]
    ParentClosed {
        /// The scope that ended late.
        scope: ScopeInfo,
        /// The parent that had already ended.
        parent: ScopeInfo,
        /// The discarded intents, as `task(args)`.
        lost: Vec<String>,
    },

    /// A policy panicked while flush was filtering; nothing was dispatched.
    #[error(
        "a policy panicked while {scope} was filtering its intents, so none were dispatched: \
         {message}"
    )]
    PolicyPanicked {
        /// The scope whose flush was aborted.
        scope: ScopeInfo,
        /// The panic message.
        message: String,
    },

    /// A transaction scope's database transaction could not commit (or, with
    /// [`Durability::CoCommit`](crate::Durability::CoCommit), its intents could
    /// not be written into it): the transaction rolled back, business data and
    /// intents alike, and nothing was dispatched.
    #[error(
        "{scope}: the database transaction failed to {action}, so it was rolled back and none \
         of its intents were dispatched: {source}"
    )]
    Transaction {
        /// The transaction scope.
        scope: ScopeInfo,
        /// What failed: `"commit"` or `"queue its intents"`.
        action: &'static str,
        /// The database error.
        source: BoxError,
    },

    /// A transaction scope sent `COMMIT` and the connection failed before the
    /// database answered: the transaction committed or rolled back, business
    /// rows and co-committed jobs together, and only the database knows
    /// which. Its intents are reported `Interrupted`, never dispatched.
    #[error(
        "{scope}: the connection failed after COMMIT was sent and before the database \
         answered, so the outcome is unknown: your rows (and any co-committed jobs) \
         committed together or not at all. Its intents were not dispatched (reported \
         interrupted); check the database before retrying: {source}"
    )]
    TransactionInDoubt {
        /// The transaction scope.
        scope: ScopeInfo,
        /// An after-commit scope's intents, never dispatched: dispatch them
        /// yourself once the database shows the transaction committed.
        /// Empty for co-commit (its jobs share the transaction's fate).
        in_doubt: Vec<Intent>,
        /// The connection error.
        source: BoxError,
    },

    /// A [savepoint scope](crate::tx::savepoint) could not be opened,
    /// released or rolled back.
    #[error("could not {action} the savepoint: {reason}")]
    Savepoint {
        /// What failed: `"open"`, `"release"` or `"roll back"`.
        action: &'static str,
        /// Why.
        reason: BoxError,
    },

    /// An intent's `delay` or `run_at` lies beyond what a queue can schedule
    /// (after the year 9999), or an executor cannot honour it.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),

    /// A scope was asked to end after it had already ended. Ending methods
    /// consume the [`ActiveScope`](crate::ActiveScope), so this means a scope
    /// ended behind its owner's back (a bug in an integration).
    #[error("{scope} has already {phase}; a scope ends once")]
    ScopeEnded {
        /// The scope.
        scope: ScopeInfo,
        /// What the scope did when it ended.
        phase: ScopePhase,
    },
}

impl From<LookupError> for Error {
    fn from(error: LookupError) -> Self {
        match error {
            LookupError::Unknown(unknown) => Error::UnknownTask(unknown),
            LookupError::Duplicate(duplicate) => Error::DuplicateTask(duplicate),
        }
    }
}

impl From<DispatchFailure> for Error {
    fn from(failure: DispatchFailure) -> Self {
        Error::Dispatch(Box::new(failure))
    }
}
