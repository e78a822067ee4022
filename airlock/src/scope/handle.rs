//! Handles to a scope: inspect it from anywhere, or make it current on
//! another thread or in another future ([`ScopeHandle::bind`]).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::context::{self, FrameGuard};
use crate::flush::record::{Fate, IntentRecord};
use crate::scope::core::{Current, ScopeCore};
use crate::scope::info::{DiscardReason, Durability, ScopeInfo, ScopePhase};
use crate::scope::state::IntentsGuard;

/// Makes `core` current on this thread until the guard drops.
pub(crate) fn enter_core(core: &Arc<ScopeCore>) -> FrameGuard {
    context::push(Current {
        scope: Some(Arc::clone(core)),
        chain: core.chain.clone(),
    })
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

    /// The buffered intents (empty once the scope has ended; see
    /// [`records`](Self::records)): the same intents on every thread, as
    /// soon as each `enqueue` returns.
    pub fn intents(&self) -> IntentsGuard<'_> {
        self.0.intents()
    }

    /// One record per intent: buffered ones while the scope is open, and what
    /// became of each once it has ended.
    pub fn records(&self) -> Arc<[IntentRecord]> {
        let state = self.0.state();
        if state.phase == ScopePhase::Open {
            state
                .buffer
                .intents()
                .iter()
                .map(|i| IntentRecord::of(i, &self.0.info, Fate::Buffered))
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
        .and_then(|current| current.scope.clone())
        .map(ScopeHandle)
}

pin_project! {
    /// A future with an existing scope current on every poll; see [`ScopeHandle::bind`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Bound<F> {
        #[pin]
        future: F,
        scope: ScopeHandle,
    }
}

impl<F> Bound<F> {
    pub(crate) fn new(scope: ScopeHandle, future: F) -> Self {
        Bound { future, scope }
    }
}

impl<F: Future> Future for Bound<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = enter_core(&this.scope.0);
        this.future.poll(cx)
    }
}

impl<F> fmt::Debug for Bound<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bound")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}
