//! One scope: its settings, its parent, and its state behind one lock.
//!
//! Every way into a scope (its owner's code, a handle on another thread, a
//! nested scope handing its intents up) goes through [`ScopeCore::push`] or
//! [`ScopeCore::capture`], under the one lock, into the one buffer.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::buffer::{Buffer, Chain};
use crate::config;
use crate::error::Error;
use crate::executor::Executor;
use crate::flush::ledger::Ledger;
use crate::intent::{Intent, IntentId};
use crate::policy::chain::{PolicyLink, PolicySource};
use crate::scope::behavior::{Behavior, ScopeView};
use crate::scope::info::{DiscardReason, Durability, ScopeId, ScopeInfo, ScopePhase};
use crate::scope::settings::{Nesting, Scope};
use crate::scope::state::{self, is_inspecting, IntentsGuard, ScopeState};

/// What is current at a point of the code: the scope `enqueue` writes to and
/// the policies an intent enqueued there must pass. The context stack holds
/// one per entered scope or `with_policy` block.
#[derive(Clone, Default)]
pub(crate) struct Current {
    /// `None` for a `with_policy` block outside any scope.
    pub(crate) scope: Option<Arc<ScopeCore>>,
    /// The policies in force, innermost first.
    pub(crate) chain: Option<Arc<PolicyLink>>,
}

/// One scope, shared by its [`ActiveScope`](crate::ActiveScope), its handles,
/// its nested scopes and the frames that enter it.
pub(crate) struct ScopeCore {
    pub(crate) info: ScopeInfo,
    pub(crate) executor: Arc<dyn Executor>,
    pub(crate) behavior: Behavior,
    pub(crate) parent: Option<Arc<ScopeCore>>,
    /// The chain an intent enqueued directly in this scope must pass.
    pub(crate) chain: Option<Arc<PolicyLink>>,
    pub(crate) cascade_depth: u32,
    /// Set for a transaction scope.
    pub(crate) durability: Option<Durability>,
    state: Mutex<ScopeState>,
    /// A copy of `state.phase`, readable without the lock.
    phase: AtomicU8,
    /// The most intents the scope may hold, its ancestors' included
    /// ([`Config::max_intents_per_scope`](crate::Config::max_intents_per_scope)).
    max_intents: usize,
    /// How many intents the buffer holds: written under the lock, read
    /// without it by descendants, which count their ancestors' intents
    /// against the bound.
    held: AtomicUsize,
}

/// Why [`ScopeCore::push`] handed an intent back.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Refused {
    /// The scope has ended, reaching this phase.
    Closed(ScopePhase),
    /// The scope (with its ancestors) holds as many intents as it may.
    Full,
    /// This thread holds the scope's intents for inspection.
    Busy,
}

impl ScopeCore {
    /// Builds a scope from `settings` under `current`, what is current where
    /// it starts (ignored by an isolated scope).
    pub(crate) fn start(settings: Scope, current: Option<&Current>) -> Arc<ScopeCore> {
        let current = match settings.nesting {
            Nesting::Isolated => None,
            _ => current,
        };
        let current_scope = current.and_then(|current| current.scope.as_deref());
        // `enclosing` is the scope around this one (if any) even when it is not
        // the parent: a boundary scope inherits its settings, not its capture.
        let (parent, enclosing, base_chain) = match (current, settings.nesting) {
            (None, _) => (None, None, None),
            (Some(current), Nesting::Detached) => {
                (None, None, PolicyLink::locals_only(current.chain.as_ref()))
            }
            (Some(current), Nesting::Boundary) => {
                (None, current.scope.clone(), current.chain.clone())
            }
            (Some(current), _) => (
                current.scope.clone(),
                current.scope.clone(),
                current.chain.clone(),
            ),
        };

        let (policies, executor, behavior, max_intents) = config::with_current(|config| {
            // The configured default policy applies once, at the outermost
            // scope; nested scopes are already under it.
            let policies = if !settings.policies.is_empty() || enclosing.is_some() {
                settings.policies
            } else {
                config.policies.clone()
            };
            let executor = settings
                .executor
                .or_else(|| enclosing.as_ref().map(|p| Arc::clone(&p.executor)))
                .unwrap_or_else(|| Arc::clone(&config.executor));
            let behavior = settings.behavior.unwrap_or_else(|| config.behavior.clone());
            (policies, executor, behavior, config.max_intents_per_scope)
        });
        // From the scope current where this one starts, whatever their
        // relation: a detached scope inside a task is still that deep in
        // the task's cascade.
        let cascade_depth = settings
            .cascade_depth
            .or_else(|| current_scope.map(|p| p.cascade_depth))
            .unwrap_or(0);

        let info = ScopeInfo {
            id: ScopeId::next(),
            name: settings.name,
        };
        let chain = if policies.is_empty() {
            base_chain
        } else {
            PolicyLink::extend(base_chain, &policies, &PolicySource::Scope(info.clone()))
        };
        tracing::trace!(target: "airlock::scope", scope = %info, nested = parent.is_some(), "scope started");
        Arc::new(ScopeCore {
            info,
            executor,
            behavior,
            parent,
            chain,
            cascade_depth,
            durability: settings.durability,
            state: Mutex::new(ScopeState::open()),
            phase: AtomicU8::new(ScopePhase::Open as u8),
            max_intents,
            held: AtomicUsize::new(0),
        })
    }

    /// Locks the state; see [`state::lock`].
    pub(crate) fn state(&self) -> MutexGuard<'_, ScopeState> {
        state::lock(&self.state, &self.info)
    }

    /// The buffered intents, borrowed.
    pub(crate) fn intents(&self) -> IntentsGuard<'_> {
        IntentsGuard::new(&self.state, &self.info)
    }

    /// The scope as its behaviour sees it.
    pub(crate) fn view(&self) -> ScopeView<'_> {
        ScopeView::new(&self.info, &self.state)
    }

    /// The scope's phase, without taking the lock.
    #[inline]
    pub(crate) fn phase(&self) -> ScopePhase {
        match self.phase.load(Ordering::Acquire) {
            0 => ScopePhase::Open,
            1 => ScopePhase::Flushing,
            2 => ScopePhase::Flushed,
            _ => ScopePhase::Discarded,
        }
    }

    fn set_phase(&self, state: &mut ScopeState, phase: ScopePhase) {
        state.phase = phase;
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// Appends the intent in `slot`, which already passed `on_enqueue`,
    /// with the chain it must pass at flush; or leaves it in `slot` and says
    /// why it was refused (the caller drops it, with no lock held).
    pub(crate) fn push(
        &self,
        slot: &mut Option<Intent>,
        chain: &Chain,
    ) -> Result<IntentId, Refused> {
        let mut state = self.lock_for_push()?;
        let intent = slot.take().expect("an intent to push");
        let id = intent.id();
        state.buffer.push(intent, chain);
        self.held.store(state.buffer.len(), Ordering::Relaxed);
        Ok(id)
    }

    /// Appends the intent `make` builds, with `chain` (see
    /// [`enqueue_new`](crate::enqueue)); `make` is not called when the
    /// scope refuses.
    #[inline]
    pub(crate) fn push_with(
        &self,
        make: impl FnOnce() -> Intent,
        chain: &Chain,
    ) -> Result<IntentId, Refused> {
        let mut state = self.lock_for_push()?;
        let id = state.buffer.push_with(make, chain);
        self.held.store(state.buffer.len(), Ordering::Relaxed);
        Ok(id)
    }

    /// The scope's state, locked, if it takes one more intent.
    fn lock_for_push(&self) -> Result<MutexGuard<'_, ScopeState>, Refused> {
        if is_inspecting(self.info.id) {
            return Err(Refused::Busy);
        }
        let state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.phase != ScopePhase::Open {
            return Err(Refused::Closed(state.phase));
        }
        if state.buffer.len() + self.held_above() >= self.max_intents {
            return Err(Refused::Full);
        }
        Ok(state)
    }

    /// What the scopes this one will hand its intents to hold: a loop calling
    /// a helper that opens a nested scope per call fills the enclosing scope
    /// one capture at a time, and must hit the bound too.
    fn held_above(&self) -> usize {
        self.ancestors()
            .map(|ancestor| ancestor.held.load(Ordering::Relaxed))
            .sum()
    }

    /// The error for an intent of `task`, refused by [`push`](Self::push).
    #[cold]
    pub(crate) fn refusal_error(&self, refused: Refused, task: &'static str) -> Error {
        match refused {
            Refused::Closed(phase) => Error::ScopeClosed {
                task,
                scope: self.info.clone(),
                phase,
            },
            Refused::Full => Error::ScopeFull {
                task,
                scope: self.info.clone(),
                limit: self.max_intents,
            },
            Refused::Busy => Error::ScopeBusy { task },
        }
    }

    /// Takes intents handed up by a descendant. Gives them back, with the
    /// reason, if this scope has already ended or this thread holds its
    /// intents (an [`IntentsGuard`]).
    pub(crate) fn capture(&self, intents: Buffer) -> Result<(), (Buffer, Refused)> {
        if is_inspecting(self.info.id) {
            return Err((intents, Refused::Busy));
        }
        let mut state = self.state();
        if state.phase != ScopePhase::Open {
            let phase = state.phase;
            return Err((intents, Refused::Closed(phase)));
        }
        // Never refused for the bound: a nested scope's intents were each
        // accepted already. They count towards it from now on.
        state.buffer.capture(intents);
        self.held.store(state.buffer.len(), Ordering::Relaxed);
        Ok(())
    }

    /// Ends the scope logically: no intent can be added after this. Hands
    /// over what it holds.
    pub(crate) fn close(&self) -> Result<Buffer, Error> {
        let mut state = self.state();
        if state.phase != ScopePhase::Open {
            return Err(Error::ScopeEnded {
                scope: self.info.clone(),
                phase: state.phase,
            });
        }
        self.set_phase(&mut state, ScopePhase::Flushing);
        self.held.store(0, Ordering::Relaxed);
        Ok(state.buffer.take())
    }

    /// Ends the scope for discarding, in one step with taking what it holds,
    /// so no enqueue can slip in between (it would be accepted and then
    /// lost). Hands back the ledger instead if the scope had already ended.
    pub(crate) fn close_for_discard(&self) -> Result<Buffer, Arc<Ledger>> {
        let mut state = self.state();
        if state.phase != ScopePhase::Open {
            return Err(state.ledger());
        }
        self.set_phase(&mut state, ScopePhase::Discarded);
        self.held.store(0, Ordering::Relaxed);
        Ok(state.buffer.take())
    }

    /// Records the final phase and what became of each intent; returns the
    /// ledger, shared with the scope (reports and handles read the same one).
    pub(crate) fn end(
        &self,
        phase: ScopePhase,
        ledger: Ledger,
        reason: Option<DiscardReason>,
    ) -> Arc<Ledger> {
        let ledger = Arc::new(ledger);
        let mut state = self.state();
        self.set_phase(&mut state, phase);
        self.held.store(0, Ordering::Relaxed);
        state.ledger = Some(Arc::clone(&ledger));
        state.discard_reason = reason;
        ledger
    }

    /// Iterates this scope's ancestors, nearest first.
    pub(crate) fn ancestors(&self) -> impl Iterator<Item = &Arc<ScopeCore>> {
        std::iter::successors(self.parent.as_ref(), |p| p.parent.as_ref())
    }
}
