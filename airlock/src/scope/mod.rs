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
//! early with [`ScopeBehavior::allow_descendant_dispatch`]. A nested scope's
//! own policy keeps applying to the intents it hands upward: an inner
//! `DropAll` scope stays a dry run inside a request scope.
//!
//! # Ways to run a scope
//! * `#[airlock::scoped]` on a function (sync or async);
//! * [`scope`] / [`scope_async`], or [`Scope::run`] / [`Scope::run_async`] to set
//!   a policy, an executor or a behaviour;
//! * [`Scope::start`] for integrations that open and close scopes imperatively.

pub(crate) mod active;
pub(crate) mod behavior;
pub(crate) mod core;
pub(crate) mod future;
pub(crate) mod handle;
pub(crate) mod info;
pub(crate) mod lifecycle;
pub(crate) mod output;
pub(crate) mod settings;
pub(crate) mod state;

use std::future::Future;

pub use active::{ActiveScope, EnterGuard};
pub use behavior::{AlwaysFlush, DefaultBehavior, Outcome, ScopeBehavior, ScopeView};
pub use future::ScopedFuture;
pub use handle::{current, Bound, HandleGuard, ScopeHandle};
pub use info::{DiscardReason, Durability, ScopeId, ScopeInfo, ScopePhase};
pub use output::ScopeOutput;
pub use settings::Scope;
pub use state::IntentsGuard;

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

/// Runs the future `body` in a new scope with the configured defaults: it
/// flushes when `body` resolves to `Ok` (async tasks are awaited), and
/// discards on `Err`, panic, or if the future is dropped first.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> airlock::Result<()> {
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// static EMAILED: AtomicU64 = AtomicU64::new(0);
///
/// #[airlock::task]
/// fn send_email(user_id: u64) {
///     EMAILED.store(user_id, Ordering::SeqCst);
/// }
///
/// let failed: Result<(), airlock::BoxError> = airlock::scope_async(async {
///     send_email::enqueue(1)?;
///     Err("sign-up refused".into()) // discarded: nothing is sent
/// })
/// .await;
/// assert!(failed.is_err());
/// assert_eq!(EMAILED.load(Ordering::SeqCst), 0);
///
/// let user_id = airlock::scope_async(async {
///     send_email::enqueue(42)?;
///     Ok::<_, airlock::Error>(42)
/// })
/// .await?; // the email is sent as the scope flushes
/// assert_eq!(EMAILED.load(Ordering::SeqCst), user_id);
/// # Ok(()) }
/// ```
pub fn scope_async<F>(body: F) -> ScopedFuture<F>
where
    F: Future,
    F::Output: ScopeOutput,
{
    Scope::new().run_async(body)
}
