//! The imperative scope API: start, enter, inspect, flush or discard.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use crate::buffer::Buffer;
use crate::context::{self, FrameGuard};
use crate::error::Error;
use crate::flush::{self, FlushReport, PreparedFlush};
use crate::intent::Intent;
use crate::scope::behavior::Outcome;
use crate::scope::core::ScopeCore;
use crate::scope::handle::{enter_core, ScopeHandle};
use crate::scope::info::{DiscardReason, ScopeInfo};
use crate::scope::output::ScopeOutput;
use crate::scope::settings::Scope;
use crate::scope::state::IntentsGuard;

/// A started scope that its owner ends explicitly: the building block of
/// `#[scoped]`, [`Scope::run`] and integrations (middleware, transactions).
///
/// Enter it with [`enter`](Self::enter) (sync) or [`ScopeHandle::bind`] (async)
/// and end it with [`flush`](Self::flush), [`discard`](Self::discard) or
/// [`end`](Self::end). Ending consumes it, so a scope cannot be ended twice, and
/// an [`EnterGuard`] borrows it, so it cannot end while entered. Dropped without
/// being ended, it discards its intents ([`DiscardReason::Abandoned`], or
/// [`DiscardReason::Panic`] while unwinding): nothing leaks.
///
/// ```
/// # #[airlock::task] fn audit(entry: String) { let _ = entry; }
/// let scope = airlock::Scope::new().name("import").start();
/// {
///     let _entered = scope.enter();
///     audit::enqueue("row 1".to_owned())?;
/// }
/// assert_eq!(scope.intents().len(), 1);
/// let report = scope.flush()?;
/// assert_eq!(report.dispatched(), ["audit"]);
/// # Ok::<(), airlock::Error>(())
/// ```
pub struct ActiveScope {
    /// `None` once ended: the scope's core has moved on (to a
    /// [`PreparedFlush`], say) or been ended in place.
    core: Option<Arc<ScopeCore>>,
}

impl fmt::Debug for ActiveScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActiveScope")
            .field("scope", &self.core().info)
            .field("nested", &self.core().parent.is_some())
            .finish_non_exhaustive()
    }
}

impl ActiveScope {
    pub(crate) fn start(settings: Scope) -> Self {
        Self::from_core(ScopeCore::start(settings, context::top().as_deref()))
    }

    pub(crate) fn from_core(core: Arc<ScopeCore>) -> Self {
        ActiveScope { core: Some(core) }
    }

    fn core(&self) -> &Arc<ScopeCore> {
        self.core
            .as_ref()
            .expect("an ActiveScope is ended only by methods that consume it")
    }

    /// Marks the scope ended (its `Drop` does nothing more) and hands over its core.
    fn end_core(&mut self) -> Arc<ScopeCore> {
        self.core
            .take()
            .expect("an ActiveScope is ended only by methods that consume it")
    }

    /// The scope's identity.
    pub fn info(&self) -> &ScopeInfo {
        &self.core().info
    }

    /// Whether the scope hands its intents to a parent instead of dispatching.
    pub fn is_nested(&self) -> bool {
        self.core().parent.is_some()
    }

    /// A cloneable handle for inspecting the scope or carrying it into a spawned task.
    pub fn handle(&self) -> ScopeHandle {
        ScopeHandle(Arc::clone(self.core()))
    }

    /// Makes this the current scope on this thread until the guard drops.
    ///
    /// Entering is re-entrant, like entering a `tracing` span: entering a
    /// scope that is already current (a helper calling `in_scope` on the
    /// scope its caller entered) makes it current once more, and every
    /// intent still goes into this one scope, once. It is not an error
    /// because nothing can be lost or doubled by it.
    pub fn enter(&self) -> EnterGuard<'_> {
        EnterGuard {
            _frame: enter_core(self.core()),
            _scope: PhantomData,
        }
    }

    /// Runs `f` with this scope entered.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _entered = self.enter();
        f()
    }

    /// The buffered intents, own and captured, in FIFO order.
    pub fn intents(&self) -> IntentsGuard<'_> {
        self.core().intents()
    }

    /// Whether the scope's behaviour flushes after this outcome (it sees
    /// the scope through a [`ScopeView`](crate::ScopeView)).
    pub fn should_flush(&self, outcome: Outcome) -> bool {
        self.core()
            .behavior
            .should_flush(outcome, &self.core().view())
    }

    /// Ends the scope as its behaviour decides for `outcome`: flush or discard.
    ///
    /// # Errors
    /// As [`flush`](Self::flush), when the behaviour flushes.
    pub fn end(self, outcome: Outcome) -> Result<FlushReport, Error> {
        if self.should_flush(outcome) {
            self.flush()
        } else {
            Ok(self.discard_with(DiscardReason::from(outcome)))
        }
    }

    /// Async [`end`](Self::end): flushes through the executor's async path.
    ///
    /// # Errors
    /// As [`flush`](Self::flush), when the behaviour flushes.
    pub async fn end_async(self, outcome: Outcome) -> Result<FlushReport, Error> {
        if self.should_flush(outcome) {
            self.flush_async().await
        } else {
            Ok(self.discard_with(DiscardReason::from(outcome)))
        }
    }

    /// Flushes: an outermost scope filters and dispatches its intents; a nested
    /// one hands them to its parent.
    ///
    /// # Errors
    /// [`Error::Dispatch`] if the executor fails (fail-fast, with a report of
    /// what was and was not dispatched), [`Error::PolicyPanicked`] if a policy
    /// panics while filtering (nothing is dispatched), [`Error::ParentClosed`]
    /// if a nested scope outlived its parent.
    pub fn flush(self) -> Result<FlushReport, Error> {
        self.flush_now()
    }

    fn flush_now(mut self) -> Result<FlushReport, Error> {
        flush::prepare(self.end_core())?.dispatch()
    }

    /// Flushes through the executor's async path, so the in-process executor
    /// awaits async tasks.
    ///
    /// # Errors
    /// As [`flush`](Self::flush).
    pub async fn flush_async(mut self) -> Result<FlushReport, Error> {
        flush::prepare(self.end_core())?.dispatch_async().await
    }

    /// Ends the scope logically and filters it, leaving the dispatch to the
    /// caller: the hook for dispatching after a commit. No intent can be added
    /// from now on.
    ///
    /// # Errors
    /// [`Error::PolicyPanicked`] or [`Error::ParentClosed`]; see [`flush`](Self::flush).
    pub fn prepare_flush(mut self) -> Result<PreparedFlush, Error> {
        flush::prepare(self.end_core())
    }

    /// Ends the scope, discarding every buffered intent.
    pub fn discard(self, reason: impl Into<Cow<'static, str>>) -> FlushReport {
        self.discard_with(DiscardReason::Requested(reason.into()))
    }

    pub(crate) fn discard_with(mut self, reason: DiscardReason) -> FlushReport {
        flush::discard(&self.end_core(), reason)
    }

    /// Ends the scope without dispatching and hands its intents to the caller
    /// (as [`testing::capture`](crate::testing::capture) does).
    pub fn into_intents(self) -> Vec<Intent> {
        self.into_buffer().into_parts().0
    }

    /// [`into_intents`](Self::into_intents), with each intent's policies.
    pub(crate) fn into_buffer(mut self) -> Buffer {
        let core = self.end_core();
        let buffer = core.close_for_discard().unwrap_or_default();
        let reason = DiscardReason::Requested("intents taken by ActiveScope::into_intents".into());
        flush::end_discarded(&core, buffer.intents(), reason);
        buffer
    }

    /// Ends the scope for a body that panicked: flushes if the behaviour says
    /// so (outside the unwind: the caller caught the panic), else discards.
    pub(crate) fn finish_panicked(self) {
        if self.should_flush(Outcome::Panic) {
            if let Err(error) = self.flush_now() {
                tracing::error!(target: "airlock::scope", %error, "flush after a panic failed");
            }
        } else {
            self.discard_with(DiscardReason::Panic);
        }
    }

    /// Ends the scope for a body that returned `output`, and folds a flush
    /// error into it.
    pub(crate) fn finish_with<R: ScopeOutput>(self, output: R) -> R {
        let outcome = if output.is_success() {
            Outcome::Success
        } else {
            Outcome::Error
        };
        let ended = if self.should_flush(outcome) {
            self.flush_now()
        } else {
            Ok(self.discard_with(DiscardReason::from(outcome)))
        };
        match ended {
            Ok(_) => output,
            Err(error) => output.absorb_flush_error(error),
        }
    }
}

impl Drop for ActiveScope {
    fn drop(&mut self) {
        if let Some(core) = self.core.take() {
            let reason = if std::thread::panicking() {
                DiscardReason::Panic
            } else {
                DiscardReason::Abandoned
            };
            flush::discard(&core, reason);
        }
    }
}

impl From<Outcome> for DiscardReason {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Success => DiscardReason::Requested("the behaviour declined to flush".into()),
            Outcome::Error => DiscardReason::Error,
            Outcome::Panic => DiscardReason::Panic,
            Outcome::Cancelled => DiscardReason::Cancelled,
        }
    }
}

/// Keeps a scope current on this thread until dropped. Not `Send`: never hold it
/// across `.await`; use [`ScopeHandle::bind`] for futures.
pub struct EnterGuard<'a> {
    _frame: FrameGuard,
    _scope: PhantomData<&'a ActiveScope>,
}

impl fmt::Debug for EnterGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnterGuard")
    }
}

impl Scope {
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
            let _entered = active.enter();
            body()
        }));
        match output {
            Ok(output) => active.finish_with(output),
            Err(panic) => {
                active.finish_panicked();
                std::panic::resume_unwind(panic)
            }
        }
    }
}
