//! Scopes decide *when* and *whether* buffered intents escape.
//!
//! A scope is a boundary (a request, a job, a command, a transaction). Intents
//! enqueued inside it are buffered in FIFO order; when it ends it either
//! **flushes** them (success) or **discards** them (error, panic, cancellation).
//!
//! # Nesting
//! A scope started inside another does not dispatch: when it flushes, its
//! surviving intents are *captured* by its parent, and so on up, so the
//! outermost scope has the final word. An ancestor may let some of them through
//! early with [`ScopeBehavior::allow_descendant_dispatch`]. Unlike airlock-py, a
//! nested scope's own policy keeps applying to the intents it hands upward: an
//! inner `DropAll` scope stays a dry run inside a request scope.
//!
//! # Ways to run a scope
//! * `#[airlock::scoped]` on a function (sync or async);
//! * [`scope`] / [`scope_async`], or [`Scope::run`] / [`Scope::run_async`] to set
//!   a policy, an executor or a behaviour;
//! * [`Scope::start`] for integrations that open and close scopes imperatively.

pub(crate) mod active;
mod behavior;
pub(crate) mod core;
mod future;

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::num::NonZeroU64;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

pub use active::{
    current, ActiveScope, EnterGuard, HandleGuard, IntentsGuard, ScopeHandle, ScopeView,
};
pub use behavior::{AlwaysFlush, DefaultBehavior, Outcome, ScopeBehavior};
pub use future::{Bound, ScopedFuture};

use crate::error::Error;
use crate::executor::Executor;
use crate::id_blocks;
use crate::policy::Policy;

/// A process-unique scope identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScopeId(NonZeroU64);

impl ScopeId {
    /// A new id, from this thread's block of ids (see `id_blocks`), so
    /// starting a scope takes no atomic operation. Ids are unique; they do
    /// not say which of two scopes on different threads started first.
    fn next() -> Self {
        static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);
        thread_local! {
            static THREAD_BLOCK: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
        }
        let id = id_blocks::next(&NEXT_BLOCK, &THREAD_BLOCK, 0);
        ScopeId(NonZeroU64::new(id).expect("scope ids start at 1 and do not wrap"))
    }
}

/// A scope's identity, for reports, errors and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeInfo {
    /// The scope's id.
    pub id: ScopeId,
    /// The name given with [`Scope::name`] (or the function name for `#[scoped]`).
    pub name: Option<Cow<'static, str>>,
}

impl fmt::Display for ScopeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "scope `{name}` (#{})", self.id.0),
            None => write!(f, "scope #{}", self.id.0),
        }
    }
}

/// Where a scope is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ScopePhase {
    /// Taking intents.
    Open = 0,
    /// Logically ended and filtered; the dispatch is pending (see [`crate::PreparedFlush`]).
    Flushing = 1,
    /// Ended by flushing: intents were dispatched, dropped or handed to the parent.
    Flushed = 2,
    /// Ended by discarding: nothing was dispatched.
    Discarded = 3,
}

impl fmt::Display for ScopePhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScopePhase::Open => "is open",
            ScopePhase::Flushing => "started flushing",
            ScopePhase::Flushed => "been flushed",
            ScopePhase::Discarded => "been discarded",
        })
    }
}

/// Why a scope discarded its intents.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiscardReason {
    /// The scope's body returned an error.
    Error,
    /// The scope's body panicked.
    Panic,
    /// The scope's future was dropped before it completed.
    Cancelled,
    /// The [`ActiveScope`] was dropped without being flushed or discarded.
    Abandoned,
    /// A policy panicked while flush was filtering; nothing was dispatched.
    PolicyPanicked(String),
    /// The scope ended after its parent had already ended, so there was no one
    /// to hand its intents to.
    ParentClosed,
    /// [`ActiveScope::discard`] was called with this reason.
    Requested(Cow<'static, str>),
    /// The scope's database transaction rolled back (explicitly, by an error
    /// in the body, or by being dropped uncommitted).
    RolledBack,
    /// The scope's database transaction failed to commit.
    CommitFailed(String),
}

impl fmt::Display for DiscardReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscardReason::Error => f.write_str("the scope returned an error"),
            DiscardReason::Panic => f.write_str("the scope panicked"),
            DiscardReason::Cancelled => {
                f.write_str("the scope's future was dropped before completion")
            }
            DiscardReason::Abandoned => f.write_str("the scope was dropped without being flushed"),
            DiscardReason::PolicyPanicked(msg) => {
                write!(f, "a policy panicked during flush: {msg}")
            }
            DiscardReason::ParentClosed => f.write_str("the parent scope had already ended"),
            DiscardReason::Requested(why) => f.write_str(why),
            DiscardReason::RolledBack => f.write_str("the scope's transaction rolled back"),
            DiscardReason::CommitFailed(error) => {
                write!(f, "the scope's transaction failed to commit: {error}")
            }
        }
    }
}

/// What a scope body may return: tells success from failure, and can carry a
/// flush error. Implemented for `Result<T, E>` whose `E: From<airlock::Error>`
/// (`anyhow::Error`, `Box<dyn Error + Send + Sync>`, `airlock::Error`, or your
/// own error with a `#[from] airlock::Error` variant).
#[diagnostic::on_unimplemented(
    message = "a scope body must return `Result<T, E>` where `E: From<airlock::Error>`; `{Self}` does not qualify",
    label = "a flush can fail (the executor may be down), and this type has no way to report that",
    note = "return `Result<T, E>` and give `E` a `From<airlock::Error>` impl (with thiserror: a `#[error(transparent)] Airlock(#[from] airlock::Error)` variant), or use `anyhow::Result<T>`"
)]
pub trait ScopeOutput {
    /// Whether the body succeeded (the scope flushes) or failed (it discards).
    fn is_success(&self) -> bool;
    /// Replaces a successful value with the error the flush returned.
    fn absorb_flush_error(self, error: Error) -> Self;
}

impl<T, E: From<Error>> ScopeOutput for Result<T, E> {
    fn is_success(&self) -> bool {
        self.is_ok()
    }
    fn absorb_flush_error(self, error: Error) -> Self {
        match self {
            Ok(_) => Err(E::from(error)),
            Err(e) => Err(e),
        }
    }
}

/// Configures a scope before running it. Anything not set comes from the
/// global [`configuration`](crate::configuration); anything set here wins.
///
/// ```
/// use airlock::{DropAll, Scope};
/// # #[airlock::task] fn send_email(user_id: u64) { let _ = user_id; }
///
/// let result: airlock::Result<()> = Scope::new()
///     .name("backfill")
///     .policy(DropAll)
///     .run(|| {
///         send_email::enqueue(1)?; // buffered, then dropped: a dry run
///         Ok(())
///     });
/// assert!(result.is_ok());
/// ```
#[derive(Debug, Default, Clone)]
#[must_use = "a Scope does nothing until `run`, `run_async` or `start` is called"]
pub struct Scope {
    pub(crate) name: Option<Cow<'static, str>>,
    pub(crate) policies: Vec<Arc<dyn Policy>>,
    pub(crate) executor: Option<Arc<dyn Executor>>,
    pub(crate) behavior: Option<Arc<dyn ScopeBehavior>>,
    pub(crate) detached: bool,
    pub(crate) isolated: bool,
    pub(crate) cascade_depth: Option<u32>,
    /// Dispatches its own intents (no parent) but stays under every policy of
    /// the scopes and blocks around it: a transaction scope.
    pub(crate) boundary: bool,
    pub(crate) durability: Option<Durability>,
}

/// How a transaction scope's intents leave, relative to its database
/// transaction's commit. Chosen explicitly when the scope starts (see
/// [`tx`](crate::tx), feature `sqlx`) and shown by
/// [`ScopeHandle::durability`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// Dispatched by the scope's executor only after `COMMIT` succeeded;
    /// discarded on rollback. Works with any executor, but a process that
    /// dies between the commit and the dispatch loses the intents.
    AfterCommit,
    /// Written as queue jobs into the same transaction as the business data,
    /// so they commit or roll back together: a crash at any point loses no
    /// committed intent and runs no rolled-back one. Needs the queue's tables
    /// in the transaction's own database (apalis SQLite or PostgreSQL).
    CoCommit,
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Durability::AfterCommit => "after-commit",
            Durability::CoCommit => "co-commit",
        })
    }
}

impl Scope {
    /// A scope with every setting taken from the global configuration.
    pub fn new() -> Self {
        Scope::default()
    }

    /// Names the scope in reports, errors and logs.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds a policy. Called more than once, the policies apply in order.
    /// Replaces the configured default policy for this scope.
    pub fn policy(mut self, policy: impl Policy) -> Self {
        self.policies.push(Arc::new(policy));
        self
    }

    /// Adds an already shared policy.
    pub fn shared_policy(mut self, policy: Arc<dyn Policy>) -> Self {
        self.policies.push(policy);
        self
    }

    /// Sets the executor that dispatches this scope's intents when it is the
    /// outermost scope (a nested scope hands its intents to its parent).
    pub fn executor(mut self, executor: impl Executor) -> Self {
        self.executor = Some(Arc::new(executor));
        self
    }

    /// Sets an already shared executor.
    pub fn shared_executor(mut self, executor: Arc<dyn Executor>) -> Self {
        self.executor = Some(executor);
        self
    }

    /// Sets the lifecycle hooks (when to flush, what descendants may dispatch).
    pub fn behavior(mut self, behavior: impl ScopeBehavior) -> Self {
        self.behavior = Some(Arc::new(behavior));
        self
    }

    /// Starts this scope as an outermost scope even when another scope is
    /// current: it dispatches its own intents instead of handing them upward.
    /// The policies of the scopes around it do not apply; the
    /// [`with_policy`](crate::with_policy) blocks around it still do, so a
    /// library cannot escape a caller's `AssertNoEffects` block this way.
    pub fn detached(mut self) -> Self {
        self.detached = true;
        self
    }

    /// Ignores everything current on this thread, scopes and `with_policy`
    /// blocks alike: how the in-process executor runs a task, exactly as a
    /// queue worker would.
    #[doc(hidden)]
    pub fn __isolated(mut self) -> Self {
        self.isolated = true;
        self
    }

    #[doc(hidden)]
    pub fn __cascade_depth(mut self, depth: u32) -> Self {
        self.cascade_depth = Some(depth);
        self
    }

    /// Starts the scope for imperative use: enter it with
    /// [`ActiveScope::enter`], end it with [`ActiveScope::flush`] or
    /// [`ActiveScope::discard`]. Its parent is the scope current right now.
    pub fn start(self) -> ActiveScope {
        ActiveScope::start(self)
    }

    /// Runs `body` inside the scope: flushes if it returns `Ok`, discards if it
    /// returns `Err` or panics (the panic then continues). A flush failure
    /// turns an `Ok` into `Err(E::from(error))`.
    pub fn run<R: ScopeOutput>(self, body: impl FnOnce() -> R) -> R {
        let active = self.start();
        // Catch the panic rather than discard from a destructor, so a
        // behaviour that flushes on panic (`AlwaysFlush`) flushes outside the
        // unwinding, then let the panic continue.
        let output = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let entered = active.enter();
            let output = body();
            (output, entered.leave())
        }));
        match output {
            Ok((output, pending)) => active.finish_with(output, pending),
            Err(panic) => {
                active.finish_panicked();
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Runs `body` inside the scope, entering it on every poll. Flushes (with the
    /// executor's async path, so async tasks are awaited) when it resolves to
    /// `Ok`; discards on `Err`, panic, or if the future is dropped first.
    pub fn run_async<F>(self, body: F) -> ScopedFuture<F>
    where
        F: Future,
        F::Output: ScopeOutput,
    {
        ScopedFuture::new(self, body)
    }
}

/// Runs `body` in a new scope with the configured defaults.
///
/// ```
/// # #[airlock::task] fn send_email(user_id: u64) { let _ = user_id; }
/// let result: airlock::Result<()> = airlock::scope(|| {
///     send_email::enqueue(42)?; // runs when the scope flushes, right after this closure
///     Ok(())
/// });
/// assert!(result.is_ok());
/// ```
pub fn scope<R: ScopeOutput>(body: impl FnOnce() -> R) -> R {
    Scope::new().run(body)
}

/// Runs the future `body` in a new scope with the configured defaults.
pub fn scope_async<F>(body: F) -> ScopedFuture<F>
where
    F: Future,
    F::Output: ScopeOutput,
{
    Scope::new().run_async(body)
}
