//! What a scope holds behind its lock: its phase, its one buffer of intents,
//! and, once it has ended, what became of each ([`Ledger`]); plus the
//! borrowed view of that buffer ([`IntentsGuard`]).

use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::buffer::{Buffer, Chain};
use crate::flush::ledger::Ledger;
use crate::intent::Intent;
use crate::policy::chain::{in_policy, PolicyLink, PolicySource};
use crate::policy::Policy;
use crate::scope::info::{DiscardReason, ScopeId, ScopeInfo, ScopePhase};

/// The state of one scope. Every intent of the scope, whoever enqueued it
/// (its owner, a handle on another thread, a nested scope ending), is in
/// `buffer`, so every view of the scope sees the same intents.
pub(crate) struct ScopeState {
    pub(crate) phase: ScopePhase,
    pub(crate) buffer: Buffer,
    /// What became of each intent, filled when the scope ends.
    pub(crate) ledger: Option<Arc<Ledger>>,
    pub(crate) discard_reason: Option<DiscardReason>,
}

impl ScopeState {
    pub(crate) fn open() -> Self {
        ScopeState {
            phase: ScopePhase::Open,
            buffer: Buffer::default(),
            ledger: None,
            discard_reason: None,
        }
    }

    /// What became of each intent of the ended scope (empty while it is open).
    pub(crate) fn ledger(&self) -> Arc<Ledger> {
        self.ledger.clone().unwrap_or_default()
    }
}

/// Locks a scope's state. The lock is never held while user code (a policy,
/// a task, an executor, an argument's `Drop`) runs, so it cannot be poisoned
/// by a panic there; recover anyway. Locking a scope this thread inspects
/// through an [`IntentsGuard`] would deadlock, so it panics with a message
/// saying what to do instead.
pub(crate) fn lock<'a>(
    state: &'a Mutex<ScopeState>,
    info: &ScopeInfo,
) -> MutexGuard<'a, ScopeState> {
    assert!(
        !is_inspecting(info.id),
        "{info} is already borrowed on this thread by an IntentsGuard (from `intents()`); \
         drop the guard before reading or changing the scope again",
    );
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

thread_local! {
    // The scopes whose intents this thread currently holds (IntentsGuard).
    static INSPECTING: RefCell<Vec<ScopeId>> = const { RefCell::new(Vec::new()) };
}

/// Whether this thread holds an [`IntentsGuard`] of scope `id`.
pub(crate) fn is_inspecting(id: ScopeId) -> bool {
    INSPECTING
        .try_with(|ids| ids.borrow().contains(&id))
        .unwrap_or(false)
}

/// The buffered intents of a scope, borrowed, like a `RefCell` borrow: while it
/// lives, `enqueue` into this scope on this thread fails with
/// [`Error::ScopeBusy`](crate::Error::ScopeBusy), so does ending a scope
/// nested in it on this thread (its intents, which it could not hand up, are
/// discarded), and reading the scope's `intents()` or `records()` again on
/// this thread panics with a message saying to drop the guard, rather than
/// deadlocking.
/// [`ScopeHandle::phase`](crate::ScopeHandle::phase) stays available.
pub struct IntentsGuard<'a> {
    state: MutexGuard<'a, ScopeState>,
    info: &'a ScopeInfo,
}

impl<'a> IntentsGuard<'a> {
    pub(crate) fn new(state: &'a Mutex<ScopeState>, info: &'a ScopeInfo) -> Self {
        let state = lock(state, info);
        INSPECTING.with(|ids| ids.borrow_mut().push(info.id));
        IntentsGuard { state, info }
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

    /// The policies of the `with_policy` blocks `intent` (one of these) was
    /// enqueued in, innermost first; none for an intent not held here.
    pub fn local_policies(&self, intent: &Intent) -> impl Iterator<Item = &Arc<dyn Policy>> {
        local_policies(self.state.buffer.chain_of(intent))
    }

    /// Whether every local policy `intent` (one of these) was enqueued under
    /// allows it: what the flush would say of those policies.
    pub fn passes_local_policies(&self, intent: &Intent) -> bool {
        passes_local_policies(self.state.buffer.chain_of(intent), intent)
    }
}

/// The `with_policy` links of `chain`, innermost first.
pub(crate) fn local_policies(chain: Option<&Chain>) -> impl Iterator<Item = &Arc<dyn Policy>> {
    PolicyLink::iter(chain.and_then(Option::as_ref))
        .filter(|link| link.source == PolicySource::Local)
        .map(|link| &link.policy)
}

/// Whether every local policy of `chain` allows `intent` (asked as the flush
/// asks: enqueueing from the policy is refused).
pub(crate) fn passes_local_policies(chain: Option<&Chain>, intent: &Intent) -> bool {
    in_policy(|| local_policies(chain).all(|policy| policy.allows(intent)))
}

impl Deref for IntentsGuard<'_> {
    type Target = [Intent];
    fn deref(&self) -> &[Intent] {
        self.state.buffer.intents()
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
    }
}

impl fmt::Debug for IntentsGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}
