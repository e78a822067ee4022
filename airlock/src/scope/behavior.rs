//! Lifecycle hooks: when a scope flushes, and what its descendants may dispatch.

use std::any::TypeId;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use crate::intent::Intent;
use crate::scope::info::ScopeInfo;
use crate::scope::state::{IntentsGuard, ScopeState};

/// How a scope's body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It returned `Ok`.
    Success,
    /// It returned `Err`.
    Error,
    /// It panicked.
    Panic,
    /// Its future was dropped before completing.
    Cancelled,
}

/// A scope's lifecycle decisions. Every method has a default: flush on success,
/// and let the outermost scope decide for every descendant.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use airlock::{Outcome, ScopeBehavior, ScopeView};
///
/// /// Flush even when the job fails: its intents are error alerts.
/// #[derive(Debug)]
/// struct AlertScope;
///
/// impl ScopeBehavior for AlertScope {
///     fn should_flush(&self, outcome: Outcome, _scope: &ScopeView<'_>) -> bool {
///         outcome != Outcome::Cancelled
///     }
/// }
///
/// static ALERTED: AtomicBool = AtomicBool::new(false);
///
/// #[airlock::task]
/// fn page_on_call(message: String) {
///     println!("paging: {message}");
///     ALERTED.store(true, Ordering::SeqCst);
/// }
///
/// let result: anyhow::Result<()> = airlock::Scope::new().behavior(AlertScope).run(|| {
///     page_on_call::enqueue("nightly import failed".into())?;
///     anyhow::bail!("import failed")
/// });
/// assert!(result.is_err());
/// assert!(ALERTED.load(Ordering::SeqCst)); // flushed despite the error
/// ```
pub trait ScopeBehavior: fmt::Debug + Send + Sync + 'static {
    /// Whether a scope whose body ended this way flushes (`true`) or discards.
    /// `scope` shows the scope deciding: its identity and every intent it
    /// holds ([`ScopeView::intents`]), the same under `Scope::run`,
    /// `airlock::scope`, `#[scoped]`, async scopes and the imperative API.
    /// Default: flush only on [`Outcome::Success`]. Returning `true` for
    /// [`Outcome::Panic`] flushes what was buffered before the panic, then the
    /// panic continues. A cancelled async scope (its future dropped) always
    /// discards: a dropped future can no longer run an async flush.
    ///
    /// ```
    /// use airlock::{Outcome, ScopeBehavior, ScopeView};
    ///
    /// /// Flush only a scope that holds something; an empty one is discarded,
    /// /// so its report says so.
    /// #[derive(Debug)]
    /// struct SkipEmpty;
    ///
    /// impl ScopeBehavior for SkipEmpty {
    ///     fn should_flush(&self, outcome: Outcome, scope: &ScopeView<'_>) -> bool {
    ///         outcome == Outcome::Success && !scope.intents().is_empty()
    ///     }
    /// }
    /// # #[airlock::task] fn send_email(user_id: u64) { let _ = user_id; }
    /// let mut handle = None;
    /// airlock::Scope::new().behavior(SkipEmpty).run(|| {
    ///     handle = airlock::current();
    ///     send_email::enqueue(7).map(drop)
    /// })?;
    /// assert_eq!(handle.unwrap().phase(), airlock::ScopePhase::Flushed);
    /// # Ok::<(), airlock::Error>(())
    /// ```
    fn should_flush(&self, outcome: Outcome, scope: &ScopeView<'_>) -> bool {
        let _ = scope;
        outcome == Outcome::Success
    }

    /// Called on each ancestor, nearest first, when a descendant scope flushes:
    /// `true` lets `intent` go on towards dispatch now, `false` captures it into
    /// this scope. An intent dispatches early only if every ancestor allows it.
    /// Default: capture everything, so the outermost scope has the final word.
    fn allow_descendant_dispatch(&self, exiting: &ScopeInfo, intent: &Intent) -> bool {
        let _ = (exiting, intent);
        false
    }
}

/// The default behaviour: flush on success, capture every descendant's intents.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultBehavior;

impl ScopeBehavior for DefaultBehavior {}

/// Flush whatever the outcome, except cancellation: for scopes whose intents
/// report failures (alerts, audit logs).
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysFlush;

impl ScopeBehavior for AlwaysFlush {
    fn should_flush(&self, outcome: Outcome, _scope: &ScopeView<'_>) -> bool {
        outcome != Outcome::Cancelled
    }
}

/// What a [`ScopeBehavior`] sees of the scope it decides for: its identity
/// and, read-only, every intent it holds (the owner's, those enqueued through
/// handles on other threads, and those captured from nested scopes),
/// whichever way the scope is run.
pub struct ScopeView<'a> {
    info: &'a ScopeInfo,
    state: &'a Mutex<ScopeState>,
}

impl<'a> ScopeView<'a> {
    pub(crate) fn new(info: &'a ScopeInfo, state: &'a Mutex<ScopeState>) -> Self {
        ScopeView { info, state }
    }

    /// The scope's identity.
    pub fn info(&self) -> &ScopeInfo {
        self.info
    }

    /// The scope's buffered intents, in FIFO order; see [`IntentsGuard`] for
    /// what holding it allows.
    pub fn intents(&self) -> IntentsGuard<'a> {
        IntentsGuard::new(self.state, self.info)
    }
}

impl fmt::Debug for ScopeView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeView")
            .field("scope", self.info)
            .finish_non_exhaustive()
    }
}

/// A behaviour as a scope holds it, with what its type says: the built-in
/// [`DefaultBehavior`] and [`AlwaysFlush`] capture every descendant's
/// intent, so a nested scope ending under one hands its buffer up whole
/// without asking intent by intent (`in_process_table`'s "nesting depth 10"
/// row). Known from the type the user chose, never from an answer a user's
/// behaviour could get wrong.
#[derive(Clone, Debug)]
pub(crate) struct Behavior {
    inner: Arc<dyn ScopeBehavior>,
    captures_all: bool,
}

impl Behavior {
    pub(crate) fn new<B: ScopeBehavior>(behavior: B) -> Self {
        let captures_all = [TypeId::of::<DefaultBehavior>(), TypeId::of::<AlwaysFlush>()]
            .contains(&TypeId::of::<B>());
        Behavior {
            inner: Arc::new(behavior),
            captures_all,
        }
    }

    /// Whether every descendant's intent is captured, whatever it is.
    pub(crate) fn captures_all(&self) -> bool {
        self.captures_all
    }
}

impl Deref for Behavior {
    type Target = dyn ScopeBehavior;
    fn deref(&self) -> &(dyn ScopeBehavior + 'static) {
        &*self.inner
    }
}
