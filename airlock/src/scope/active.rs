//! The imperative scope API: start, enter, inspect, flush or discard.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::{Arc, MutexGuard};

use crate::buffer::Buffer;
use crate::context::{self, Frame, FrameGuard};
use crate::error::Error;
use crate::flush::{self, FlushReport, IntentRecord, PreparedFlush, Report};
use crate::intent::Intent;
use crate::scope::core::{ScopeCore, ScopeState};
use crate::scope::{
    Bound, DiscardReason, Durability, Outcome, Scope, ScopeId, ScopeInfo, ScopeOutput, ScopePhase,
};

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
        Self::from_core(ScopeCore::start(settings))
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
            _frame: context::push_owned(Frame {
                scope: Some(Arc::clone(self.core())),
                chain: self.core().chain.clone(),
            }),
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
        IntentsGuard::new(self.core())
    }

    /// Whether the scope's behaviour flushes after this outcome (it sees
    /// the scope through a [`ScopeView`]).
    pub fn should_flush(&self, outcome: Outcome) -> bool {
        self.decide(outcome, None)
    }

    /// Asks the behaviour, showing it the scope with what the owner's frame
    /// handed over (`pending`) once it looks.
    fn decide(&self, outcome: Outcome, pending: Option<&RefCell<Buffer>>) -> bool {
        let view = ScopeView {
            core: self.core(),
            pending,
        };
        self.core().behavior.should_flush(outcome, &view)
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
        self.flush_for(Report::Returned, Buffer::default())
    }

    /// Flushes, with what the owner's frame still holds (`pending`).
    fn flush_for(mut self, report: Report, pending: Buffer) -> Result<FlushReport, Error> {
        flush::prepare(self.end_core(), report, pending)?.dispatch()
    }

    /// Flushes through the executor's async path, so the in-process executor
    /// awaits async tasks.
    ///
    /// # Errors
    /// As [`flush`](Self::flush).
    pub async fn flush_async(self) -> Result<FlushReport, Error> {
        self.flush_async_for(Report::Returned).await
    }

    /// [`flush_async`](Self::flush_async) for a caller that says whether it
    /// reads the report.
    pub(crate) async fn flush_async_for(mut self, report: Report) -> Result<FlushReport, Error> {
        flush::prepare(self.end_core(), report, Buffer::default())?
            .dispatch_async()
            .await
    }

    /// Ends the scope logically and filters it, leaving the dispatch to the
    /// caller: the hook for dispatching after a commit. No intent can be added
    /// from now on.
    ///
    /// # Errors
    /// [`Error::PolicyPanicked`] or [`Error::ParentClosed`]; see [`flush`](Self::flush).
    pub fn prepare_flush(mut self) -> Result<PreparedFlush, Error> {
        flush::prepare(self.end_core(), Report::Returned, Buffer::default())
    }

    /// Ends the scope, discarding every buffered intent.
    pub fn discard(self, reason: impl Into<Cow<'static, str>>) -> FlushReport {
        self.discard_with(DiscardReason::Requested(reason.into()))
    }

    pub(crate) fn discard_with(mut self, reason: DiscardReason) -> FlushReport {
        flush::discard(&self.end_core(), reason)
    }

    /// Ends the scope without dispatching and hands its intents to the caller
    /// (used by [`testing::capture`](crate::testing::capture)).
    pub fn into_intents(mut self) -> Vec<Intent> {
        let core = self.end_core();
        let intents = core.state_with_pending().buffer.take().into_intents();
        let reason = DiscardReason::Requested("intents taken by ActiveScope::into_intents".into());
        flush::end_discarded(&core, &intents, reason);
        intents
    }

    /// Ends the scope for a body that panicked: flushes if the behaviour says
    /// so (outside the unwind: the caller caught the panic), else discards.
    pub(crate) fn finish_panicked(self) {
        if self.should_flush(Outcome::Panic) {
            if let Err(error) = self.flush_for(Report::Dropped, Buffer::default()) {
                tracing::error!(target: "airlock::scope", %error, "flush after a panic failed");
            }
        } else {
            self.discard_with(DiscardReason::Panic);
        }
    }

    /// Ends the scope for a body that returned `output`, and folds a flush
    /// error into it. `pending` is what the owner's frame buffered and handed
    /// over as it was popped ([`EnterGuard::leave`]).
    pub(crate) fn finish_with<R: ScopeOutput>(self, output: R, pending: Buffer) -> R {
        let outcome = if output.is_success() {
            Outcome::Success
        } else {
            Outcome::Error
        };
        let pending = RefCell::new(pending);
        let flush = self.decide(outcome, Some(&pending));
        let pending = pending.into_inner();
        let ended = if flush {
            self.flush_for(Report::Dropped, pending)
        } else {
            self.core().publish(pending);
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

pub(crate) fn enter_core(core: &Arc<ScopeCore>) -> FrameGuard {
    context::push(Frame {
        scope: Some(Arc::clone(core)),
        chain: core.chain.clone(),
    })
}

/// Keeps a scope current on this thread until dropped. Not `Send`: never hold it
/// across `.await`; use [`ScopeHandle::bind`] for futures.
pub struct EnterGuard<'a> {
    _frame: FrameGuard,
    _scope: PhantomData<&'a ActiveScope>,
}

impl EnterGuard<'_> {
    /// Leaves the scope, handing over what this frame buffered instead of
    /// publishing it: for an owner about to end the scope.
    pub(crate) fn leave(self) -> Buffer {
        self._frame.into_pending()
    }
}

impl fmt::Debug for EnterGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnterGuard")
    }
}

/// A shared handle to a scope: inspect it, or carry it into spawned work.
///
/// A spawned task does not inherit the current scope (each scope stays with
/// the code that opened it). To let spawned work enqueue into a scope, bind it
/// explicitly; the scope must still be open when the work enqueues:
///
/// ```
/// # #[airlock::task] fn resize_image(id: u64) { let _ = id; }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> airlock::Result<()> {
/// airlock::scope_async(async {
///     let scope = airlock::current().expect("inside a scope");
///     let work = tokio::spawn(scope.bind(async { resize_image::enqueue(7) }));
///     work.await.expect("task panicked")?;
///     Ok::<(), airlock::Error>(())
/// })
/// .await
/// # }
/// ```
#[derive(Clone)]
pub struct ScopeHandle(pub(crate) Arc<ScopeCore>);

impl fmt::Debug for ScopeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ScopeHandle").field(&self.0.info).finish()
    }
}

impl ScopeHandle {
    /// The scope's identity.
    pub fn info(&self) -> &ScopeInfo {
        &self.0.info
    }

    /// Where the scope is in its life.
    pub fn phase(&self) -> ScopePhase {
        self.0.phase()
    }

    /// Whether the scope hands its intents to a parent instead of dispatching.
    pub fn is_nested(&self) -> bool {
        self.0.parent.is_some()
    }

    /// For a transaction scope, how its intents leave relative to the commit;
    /// `None` for any other scope.
    pub fn durability(&self) -> Option<Durability> {
        self.0.durability
    }

    /// The buffered intents (empty once the scope has ended; see [`records`](Self::records)).
    ///
    /// The scope's owner (the code running inside it through
    /// [`ActiveScope::enter`], [`Scope::run`] or a scoped future) buffers its
    /// intents without locking and hands them to the scope when it leaves it
    /// (or its future's poll returns): on another thread a handle sees them
    /// from then on; on the owner's thread, at once.
    pub fn intents(&self) -> IntentsGuard<'_> {
        IntentsGuard::new(&self.0)
    }

    /// One record per intent: buffered ones while the scope is open, and what
    /// became of each once it has ended.
    pub fn records(&self) -> Arc<[IntentRecord]> {
        let state = self.0.state_with_pending();
        if state.phase == ScopePhase::Open {
            state
                .buffer
                .as_slice()
                .iter()
                .map(|i| IntentRecord::of(i, &self.0.info, crate::flush::Fate::Buffered))
                .collect()
        } else {
            let ledger = state.ledger();
            drop(state);
            Arc::clone(ledger.records())
        }
    }

    /// Why the scope discarded its intents, if it did.
    pub fn discard_reason(&self) -> Option<DiscardReason> {
        self.0.state().discard_reason.clone()
    }

    /// Makes this the current scope on this thread until the guard drops.
    pub fn enter(&self) -> HandleGuard {
        HandleGuard {
            _frame: enter_core(&self.0),
        }
    }

    /// Runs `f` with this scope current.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _entered = self.enter();
        f()
    }

    /// Wraps `future` so this scope is current on every poll, wherever it runs.
    pub fn bind<F: Future>(&self, future: F) -> Bound<F> {
        Bound::new(self.clone(), future)
    }
}

/// Keeps a [`ScopeHandle`]'s scope current until dropped.
pub struct HandleGuard {
    _frame: FrameGuard,
}

impl fmt::Debug for HandleGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HandleGuard")
    }
}

/// The scope current on this thread (or task, when polled inside a scoped
/// future), if any.
pub fn current() -> Option<ScopeHandle> {
    context::top()
        .and_then(|frame| frame.scope)
        .map(ScopeHandle)
}

thread_local! {
    // The scopes whose intents this thread currently holds (IntentsGuard).
    static INSPECTING: RefCell<Vec<ScopeId>> = const { RefCell::new(Vec::new()) };
    // How many there are: every enqueue asks, and the answer is almost always
    // "none", which this plain counter gives without touching the list.
    static INSPECTING_COUNT: Cell<usize> = const { Cell::new(0) };
}

/// Whether this thread holds an [`IntentsGuard`] of scope `id`.
#[inline]
pub(crate) fn is_inspecting(id: ScopeId) -> bool {
    INSPECTING_COUNT.with(Cell::get) != 0 && INSPECTING.with(|ids| ids.borrow().contains(&id))
}

/// What a [`ScopeBehavior`](crate::ScopeBehavior) sees of the scope it
/// decides for: its identity and, read-only, every intent it holds (the
/// owner's, those enqueued through handles on other threads, and those
/// captured from nested scopes), whichever way the scope is run.
pub struct ScopeView<'a> {
    core: &'a Arc<ScopeCore>,
    /// What the owner's frame handed over as the body ended, not yet in the
    /// scope's buffer: moved in when the behaviour first looks.
    pending: Option<&'a RefCell<Buffer>>,
}

impl<'a> ScopeView<'a> {
    /// The scope's identity.
    pub fn info(&self) -> &ScopeInfo {
        &self.core.info
    }

    /// The scope's buffered intents, in FIFO order; see [`IntentsGuard`] for
    /// what holding it allows.
    pub fn intents(&self) -> IntentsGuard<'a> {
        if let Some(pending) = self.pending {
            let pending = pending.take();
            if !pending.as_slice().is_empty() {
                self.core.publish(pending);
            }
        }
        IntentsGuard::new(self.core)
    }
}

impl fmt::Debug for ScopeView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeView")
            .field("scope", &self.core.info)
            .finish_non_exhaustive()
    }
}

/// The buffered intents of a scope, borrowed, like a `RefCell` borrow: while it
/// lives, `enqueue` into this scope on this thread fails with
/// [`Error::ScopeBusy`], and reading the scope's `intents()` or `records()`
/// again on this thread panics with a message saying to drop the guard, rather
/// than deadlocking. [`ScopeHandle::phase`] stays available.
pub struct IntentsGuard<'a> {
    state: MutexGuard<'a, ScopeState>,
    info: &'a ScopeInfo,
}

impl<'a> IntentsGuard<'a> {
    fn new(core: &'a Arc<ScopeCore>) -> Self {
        let state = core.state_with_pending();
        INSPECTING.with(|ids| ids.borrow_mut().push(core.info.id));
        INSPECTING_COUNT.with(|count| count.set(count.get() + 1));
        IntentsGuard {
            state,
            info: &core.info,
        }
    }

    /// Intents enqueued directly in this scope.
    pub fn own(&self) -> impl Iterator<Item = &Intent> {
        let id = self.info.id;
        self.iter().filter(move |i| i.scope == Some(id))
    }

    /// Intents captured from nested scopes.
    pub fn captured(&self) -> impl Iterator<Item = &Intent> {
        let id = self.info.id;
        self.iter().filter(move |i| i.scope != Some(id))
    }

    /// The task names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.iter().map(Intent::name).collect()
    }
}

impl Deref for IntentsGuard<'_> {
    type Target = [Intent];
    fn deref(&self) -> &[Intent] {
        self.state.buffer.as_slice()
    }
}

impl Drop for IntentsGuard<'_> {
    fn drop(&mut self) {
        let id = self.info.id;
        let _ = INSPECTING.try_with(|ids| {
            let mut ids = ids.borrow_mut();
            if let Some(pos) = ids.iter().rposition(|i| *i == id) {
                ids.remove(pos);
            }
        });
        let _ = INSPECTING_COUNT.try_with(|count| count.set(count.get().saturating_sub(1)));
    }
}

impl fmt::Debug for IntentsGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}
