//! The shared state of one scope: its settings, its parent, and its buffer.

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::buffer::Buffer;
use crate::config;
use crate::context;
use crate::error::Error;
use crate::executor::Executor;
use crate::flush::Ledger;
use crate::intent::{self, Intent, IntentId};
use crate::policy::chain::{PolicyLink, PolicySource};
use crate::scope::active::is_inspecting;
use crate::scope::{
    DiscardReason, Durability, Scope, ScopeBehavior, ScopeId, ScopeInfo, ScopePhase,
};

/// One scope, shared by its [`ActiveScope`](crate::ActiveScope), its handles and
/// the frames that enter it.
pub(crate) struct ScopeCore {
    pub(crate) info: ScopeInfo,
    pub(crate) executor: Arc<dyn Executor>,
    pub(crate) behavior: Arc<dyn ScopeBehavior>,
    pub(crate) parent: Option<Arc<ScopeCore>>,
    /// The chain an intent enqueued directly in this scope must pass.
    pub(crate) chain: Option<Arc<PolicyLink>>,
    pub(crate) cascade_depth: u32,
    /// Set for a transaction scope.
    pub(crate) durability: Option<Durability>,
    state: Mutex<ScopeState>,
    // A copy of `state.phase`, readable without the lock.
    phase: AtomicU8,
    /// A bound above every id this scope holds or has seen handed out on a
    /// thread its owner left ([`intent::id_clock`]): an intent joining from
    /// the owner's frame with a lower id is renumbered (see
    /// [`ScopeCore::order`]).
    id_clock: AtomicU64,
    /// The most intents the scope may hold ([`Config::max_intents_per_scope`](crate::Config::max_intents_per_scope)).
    max_intents: usize,
    /// How many intents the shared buffer holds, written under the lock and
    /// read without it by the owner's lane, which adds what it buffers itself.
    held: AtomicUsize,
    /// How many intents the owner's frame buffers outside the lock, written
    /// by the owner's lane (a plain store, no read-modify-write) and read by
    /// the other lanes, so the bound counts both halves.
    owner_pending: AtomicUsize,
}

/// Why [`ScopeCore::try_push`] handed an intent back.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Refused {
    /// The scope has ended, reaching this phase.
    Closed(ScopePhase),
    /// The scope holds as many intents as it may.
    Full,
}

pub(crate) struct ScopeState {
    pub(crate) phase: ScopePhase,
    pub(crate) buffer: Buffer,
    /// What became of each intent, filled when the scope ends.
    ledger: Option<Arc<Ledger>>,
    pub(crate) discard_reason: Option<DiscardReason>,
}

impl ScopeState {
    /// What became of each intent of the ended scope (empty while it is open).
    pub(crate) fn ledger(&self) -> Arc<Ledger> {
        self.ledger.clone().unwrap_or_default()
    }
}

impl ScopeCore {
    /// Builds a scope under whatever frame is current on this thread.
    pub(crate) fn start(settings: Scope) -> Arc<ScopeCore> {
        let below = if settings.isolated {
            None
        } else {
            context::top()
        };
        // `enclosing` is the scope around this one (if any) even when it is not
        // the parent: a boundary scope inherits its settings, not its capture.
        let (parent, enclosing, base_chain) = match below {
            None => (None, None, None),
            // Detached: no parent scope, but the `with_policy` blocks around it
            // still apply to what is enqueued inside.
            Some(frame) if settings.detached => {
                (None, None, PolicyLink::locals_only(frame.chain.as_ref()))
            }
            // Boundary: dispatches its own intents, under every policy around it.
            Some(frame) if settings.boundary => (None, frame.scope, frame.chain),
            Some(frame) => (frame.scope.clone(), frame.scope, frame.chain),
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
            let behavior = settings
                .behavior
                .unwrap_or_else(|| Arc::clone(&config.behavior));
            (policies, executor, behavior, config.max_intents_per_scope)
        });
        let cascade_depth = settings
            .cascade_depth
            .or_else(|| enclosing.as_ref().map(|p| p.cascade_depth))
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
            phase: AtomicU8::new(ScopePhase::Open as u8),
            id_clock: AtomicU64::new(0),
            max_intents,
            held: AtomicUsize::new(0),
            owner_pending: AtomicUsize::new(0),
            state: Mutex::new(ScopeState {
                phase: ScopePhase::Open,
                buffer: Buffer::default(),
                ledger: None,
                discard_reason: None,
            }),
        })
    }

    /// Locks the state. The lock is never held while user code (a policy, a
    /// task, an executor) runs, so a panic cannot poison it; recover anyway.
    pub(crate) fn state(&self) -> MutexGuard<'_, ScopeState> {
        assert!(
            !is_inspecting(self.info.id),
            "{} is already borrowed on this thread by an IntentsGuard (from `intents()`); \
             drop the guard before reading or changing the scope again",
            self.info
        );
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new intent id for this scope's owner: the next of this thread's,
    /// above the clock (see [`order`](Self::order)).
    #[inline]
    pub(crate) fn next_id(&self) -> IntentId {
        IntentId::at_least(self.id_clock.load(Ordering::Relaxed))
    }

    /// Renumbers `intent`, about to join this scope from its owner's frame,
    /// if its id is below one the scope already holds (another thread
    /// enqueued in the meantime, or the owner is an async task that moved
    /// here from a thread further ahead), so ids stay in enqueue order.
    #[inline]
    pub(crate) fn order(&self, intent: &mut Intent) {
        let clock = self.id_clock.load(Ordering::Relaxed);
        if intent.id().get() < clock {
            intent.renumber_at_least(clock);
        }
    }

    /// Called as the owner's frame is popped on this thread (the end of a
    /// poll of a scoped future, say): the task may next be polled on a
    /// thread whose ids are lower, and [`order`](Self::order) must then know
    /// how far this thread's have gone, nested scopes' included.
    pub(crate) fn owner_left(&self) {
        let clock = intent::id_clock();
        // Usually nothing new was created since the last time: no atomic write.
        if clock > self.id_clock.load(Ordering::Relaxed) {
            self.id_clock.fetch_max(clock, Ordering::Relaxed);
        }
    }

    /// Locks the state once this thread's frames have handed over the
    /// intents they buffer for this scope (see [`context::push_owned`]), so
    /// the buffer holds every intent enqueued on this thread so far.
    pub(crate) fn state_with_pending(self: &Arc<Self>) -> MutexGuard<'_, ScopeState> {
        context::publish_pending(self);
        self.state()
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

    /// Appends an intent that already passed `on_enqueue`.
    pub(crate) fn push(&self, intent: Intent) -> Result<IntentId, Error> {
        self.try_push(intent)
            .map_err(|(refused, intent)| self.refusal_error(refused, &intent))
    }

    /// The error for `intent`, refused by [`try_push`](Self::try_push).
    #[cold]
    pub(crate) fn refusal_error(&self, refused: Refused, intent: &Intent) -> Error {
        match refused {
            Refused::Closed(phase) => self.closed_error(intent, phase),
            Refused::Full => self.full_error(intent),
        }
    }

    /// Whether the scope is full for an enqueue from a lane that holds
    /// `pending` intents of its own besides the shared buffer.
    #[inline]
    pub(crate) fn is_full(&self, pending: usize) -> bool {
        pending + self.held_here_and_above() >= self.max_intents
    }

    /// What this scope and the scopes it will hand its intents to hold: a
    /// loop calling a helper that opens a nested scope per call fills the
    /// enclosing scope one capture at a time, and must hit the bound too.
    /// (Usually no ancestor: one load.)
    #[inline]
    fn held_here_and_above(&self) -> usize {
        let mut held = self.held.load(Ordering::Relaxed);
        for ancestor in self.ancestors() {
            held += ancestor.held.load(Ordering::Relaxed);
        }
        held
    }

    /// Records how many intents the owner's frame now buffers (see
    /// `owner_pending`).
    #[inline]
    pub(crate) fn note_owner_pending(&self, pending: usize) {
        self.owner_pending.store(pending, Ordering::Relaxed);
    }

    /// The error for `intent` arriving at a full scope.
    #[cold]
    pub(crate) fn full_error(&self, intent: &Intent) -> Error {
        Error::ScopeFull {
            task: intent.name(),
            scope: self.info.clone(),
            limit: self.max_intents,
        }
    }

    /// The error for `intent` arriving after the scope reached `phase`.
    pub(crate) fn closed_error(&self, intent: &Intent, phase: ScopePhase) -> Error {
        Error::ScopeClosed {
            task: intent.name(),
            scope: self.info.clone(),
            phase,
        }
    }

    /// Appends an intent that already passed `on_enqueue`, or hands it back
    /// with the error: the scope has ended, or is full.
    pub(crate) fn try_push(&self, intent: Intent) -> Result<IntentId, (Refused, Intent)> {
        // `enqueue` already refused if this thread holds the scope's intents.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.phase != ScopePhase::Open {
            return Err((Refused::Closed(state.phase), intent));
        }
        let owner_pending = self.owner_pending.load(Ordering::Relaxed);
        let above: usize = self
            .ancestors()
            .map(|ancestor| ancestor.held.load(Ordering::Relaxed))
            .sum();
        if state.buffer.as_slice().len() + owner_pending + above >= self.max_intents {
            return Err((Refused::Full, intent));
        }
        // This path serves other threads (handles), `with_policy` blocks and
        // the checked enqueue; the owner's frame may be buffering intents
        // with lower ids meanwhile. An id above all comes after them; the
        // clock makes the owner's next ones come after it (see `order`), and
        // this thread's next ones do anyway (it moved to a new block).
        let mut intent = intent;
        intent.renumber_above_all();
        let id = intent.id();
        self.id_clock.fetch_max(id.get() + 1, Ordering::Relaxed);
        state.buffer.push(intent);
        self.held
            .store(state.buffer.as_slice().len(), Ordering::Relaxed);
        Ok(id)
    }

    /// Takes the intents an owner's frame buffered (see
    /// [`context::push_owned`]). The scope is open (its owner has not ended
    /// it yet) unless a guard was leaked; then they are lost, loudly.
    pub(crate) fn publish(&self, pending: Buffer) {
        let refused = self.capture(pending);
        self.note_owner_pending(0);
        if let Err(refused) = refused {
            tracing::error!(
                target: "airlock::scope",
                scope = %self.info,
                lost = refused.as_slice().len(),
                "intents enqueued through a leaked scope guard after the scope ended were lost"
            );
        }
    }

    /// Takes intents handed up by a descendant. Gives them back if this scope
    /// has already ended.
    pub(crate) fn capture(&self, intents: Buffer) -> Result<(), Buffer> {
        let mut state = self.state();
        if state.phase != ScopePhase::Open {
            return Err(intents);
        }
        // Never refused for the bound: a nested scope's intents were each
        // accepted already. They count towards it from now on.
        state.buffer.capture(intents);
        self.held
            .store(state.buffer.as_slice().len(), Ordering::Relaxed);
        Ok(())
    }

    /// Ends the scope logically: no intent can be added after this.
    ///
    /// Usually the caller holds the only reference left (the owner's frame
    /// is popped, no handle or nested scope is alive): nobody can race, no
    /// thread holds intents for it, and the state is reached without the lock.
    ///
    /// `pending` holds what the owner's frame buffered, handed over as the
    /// owner popped it (see [`FrameGuard::into_pending`](context::FrameGuard::into_pending)).
    pub(crate) fn close(self: &mut Arc<Self>, pending: Buffer) -> Result<Buffer, Error> {
        if let Some(core) = Arc::get_mut(self) {
            let state = core
                .state
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            return Self::close_state(&core.info, &core.phase, state, pending);
        }
        let mut state = self.state_with_pending();
        Self::close_state(&self.info, &self.phase, &mut state, pending)
    }

    fn close_state(
        info: &ScopeInfo,
        phase: &AtomicU8,
        state: &mut ScopeState,
        pending: Buffer,
    ) -> Result<Buffer, Error> {
        if state.phase != ScopePhase::Open {
            return Err(Error::State(format!(
                "{info} has already {}; a scope ends once",
                state.phase
            )));
        }
        state.phase = ScopePhase::Flushing;
        phase.store(ScopePhase::Flushing as u8, Ordering::Release);
        state.buffer.capture(pending);
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
        state.ledger = Some(Arc::clone(&ledger));
        state.discard_reason = reason;
        ledger
    }

    /// [`end`](Self::end) by the holder of `self`: when it is the only
    /// reference left, nobody can read the scope's state again, so only the
    /// phase is recorded and the ledger goes to the caller alone.
    pub(crate) fn end_owned(
        self: &mut Arc<Self>,
        phase: ScopePhase,
        ledger: Ledger,
        reason: Option<DiscardReason>,
    ) -> Arc<Ledger> {
        match Arc::get_mut(self) {
            Some(core) => {
                let state = core
                    .state
                    .get_mut()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                state.phase = phase;
                state.discard_reason = reason;
                core.phase.store(phase as u8, Ordering::Release);
                Arc::new(ledger)
            }
            None => self.end(phase, ledger, reason),
        }
    }

    /// Iterates this scope's ancestors, nearest first.
    pub(crate) fn ancestors(&self) -> impl Iterator<Item = &Arc<ScopeCore>> {
        std::iter::successors(self.parent.as_ref(), |p| p.parent.as_ref())
    }
}
