//! The flush: how a scope's buffer becomes dispatched work, in two passes.
//!
//! 1. **Prepare** (logical end): the scope closes, so nothing can be added. A
//!    nested scope routes each intent to the ancestor that captures it. The
//!    outermost scope (and any intent every ancestor lets through early) is then
//!    *filtered*: every policy on the intent's chain is asked, innermost first.
//!    Filtering finishes for every intent before anything is dispatched, so a
//!    policy that panics dispatches nothing.
//! 2. **Dispatch** (physical): the survivors go to the executor in FIFO order.
//!    The two steps are separate ([`PreparedFlush`]) so an integration can end a
//!    scope now and dispatch later, e.g. after a transaction commits.
//!
//! Afterwards the scope keeps a compact ledger entry per intent saying what became
//! of it, read as [`IntentRecord`]s in the [`FlushReport`].

pub(crate) mod ledger;
#[cfg(any(feature = "tower", feature = "sqlx"))]
pub(crate) mod must_finish;
pub(crate) mod record;
pub(crate) mod report;

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use crate::buffer::{self, Buffer};
use crate::error::Error;
use crate::executor::{DispatchError, Executor};
use crate::intent::Intent;
use crate::policy::chain::{in_policy, PolicyLink};
use crate::scope::core::ScopeCore;
use crate::scope::info::{DiscardReason, ScopeId, ScopePhase};

pub(crate) use ledger::{FateRef, Ledger, Positions};
pub use record::{Fate, IntentRecord};
pub use report::{DispatchFailure, FlushReport};

/// A scope that has ended logically and been filtered, whose survivors are not
/// dispatched yet. Dispatch it later (e.g. after a commit) with
/// [`dispatch`](Self::dispatch) or [`dispatch_async`](Self::dispatch_async);
/// dropping it discards the survivors.
#[must_use = "dropping a PreparedFlush discards its intents; call dispatch()"]
pub struct PreparedFlush {
    core: Arc<ScopeCore>,
    ledger: Ledger,
    survivors: Vec<Intent>,
    /// The ledger entry of each survivor.
    survivor_entries: Positions,
    /// The ledger entries of the survivors handed to the executor.
    in_flight: Positions,
    finished: bool,
}

impl fmt::Debug for PreparedFlush {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedFlush")
            .field("scope", &self.core.info)
            .field("survivors", &self.survivors.len())
            .finish_non_exhaustive()
    }
}

impl PreparedFlush {
    /// The intents that passed every policy and will be dispatched, in order.
    pub fn intents(&self) -> impl ExactSizeIterator<Item = &Intent> {
        self.survivors.iter()
    }

    /// Dispatches the survivors with the scope's executor.
    ///
    /// # Errors
    /// [`Error::Dispatch`] if the executor fails; see [`DispatchFailure`].
    pub fn dispatch(mut self) -> Result<FlushReport, Error> {
        let intents = self.take_survivors();
        let result = self.send(&*self.core.executor, intents);
        self.complete(result)
    }

    /// Dispatches the survivors with `executor` instead of the scope's own.
    ///
    /// # Errors
    /// [`Error::Dispatch`] if the executor fails.
    pub fn dispatch_with(mut self, executor: &dyn Executor) -> Result<FlushReport, Error> {
        let intents = self.take_survivors();
        let result = self.send(executor, intents);
        self.complete(result)
    }

    fn send(&self, executor: &dyn Executor, intents: Vec<Intent>) -> Result<(), DispatchError> {
        if intents.is_empty() {
            buffer::recycle(intents);
            return Ok(());
        }
        let _span = self.span(intents.len()).entered();
        executor.dispatch(intents)
    }

    /// Dispatches the survivors with the scope's executor's async path
    /// (async tasks are awaited by the in-process executor).
    ///
    /// # Errors
    /// [`Error::Dispatch`] if the executor fails.
    pub async fn dispatch_async(self) -> Result<FlushReport, Error> {
        let executor = Arc::clone(&self.core.executor);
        self.dispatch_async_with(&*executor).await
    }

    /// Async dispatch with `executor` instead of the scope's own.
    ///
    /// # Errors
    /// [`Error::Dispatch`] if the executor fails.
    pub async fn dispatch_async_with(
        mut self,
        executor: &dyn Executor,
    ) -> Result<FlushReport, Error> {
        let intents = self.take_survivors();
        self.dispatch_taken(intents, executor).await
    }

    /// Dispatches survivors taken earlier with [`take_survivors`](Self::take_survivors)
    /// through the scope's own executor (a transaction scope takes them
    /// before `COMMIT`, so that a flush dropped meanwhile reports them
    /// interrupted, not discarded).
    #[cfg(feature = "sqlx")]
    pub(crate) async fn dispatch_survivors(
        self,
        intents: Vec<Intent>,
    ) -> Result<FlushReport, Error> {
        let executor = Arc::clone(&self.core.executor);
        self.dispatch_taken(intents, &*executor).await
    }

    async fn dispatch_taken(
        self,
        intents: Vec<Intent>,
        executor: &dyn Executor,
    ) -> Result<FlushReport, Error> {
        let result = if intents.is_empty() {
            buffer::recycle(intents);
            Ok(())
        } else {
            let span = self.span(intents.len());
            tracing::Instrument::instrument(executor.dispatch_async(intents), span).await
        };
        self.complete(result)
    }

    fn span(&self, intents: usize) -> tracing::Span {
        tracing::debug_span!(target: "airlock::flush", "airlock.dispatch", scope = %self.core.info, intents)
    }

    /// The scope being flushed.
    #[cfg(feature = "sqlx")]
    pub(crate) fn scope(&self) -> &crate::scope::info::ScopeInfo {
        &self.core.info
    }

    /// Hands the survivors to a dispatcher outside the executor (a transaction
    /// scope's co-commit); end with [`complete`](Self::complete) or
    /// [`abort`](Self::abort).
    pub(crate) fn take_survivors(&mut self) -> Vec<Intent> {
        self.in_flight = std::mem::take(&mut self.survivor_entries);
        std::mem::take(&mut self.survivors)
    }

    /// Ends the scope with nothing dispatched: every survivor (handed out or
    /// not) is discarded for `reason`.
    #[cfg_attr(not(feature = "sqlx"), allow(dead_code))]
    pub(crate) fn abort(mut self, reason: DiscardReason) -> FlushReport {
        self.finished = true;
        let mut ledger = std::mem::take(&mut self.ledger);
        let lost =
            std::mem::take(&mut self.in_flight).chain(std::mem::take(&mut self.survivor_entries));
        let discarded = ledger.fate(Fate::Discarded(reason.clone()));
        ledger.set_each(&lost, discarded);
        tracing::debug!(
            target: "airlock::flush",
            scope = %self.core.info,
            lost = lost.len(),
            %reason,
            "scope discarded after filtering"
        );
        FlushReport::new(
            self.core.info.clone(),
            self.core.end(ScopePhase::Discarded, ledger, Some(reason)),
        )
    }

    pub(crate) fn complete(
        mut self,
        result: Result<(), DispatchError>,
    ) -> Result<FlushReport, Error> {
        self.finished = true;
        let in_flight = std::mem::take(&mut self.in_flight);
        let mut ledger = std::mem::take(&mut self.ledger);
        let outcome = match result {
            Ok(()) => {
                let dispatched = ledger.fate(Fate::Dispatched);
                ledger.set_each(&in_flight, dispatched);
                Ok(())
            }
            Err(failure) => {
                let DispatchError {
                    dispatched,
                    attempted_failed,
                    in_doubt,
                    source,
                    not_attempted,
                } = failure;
                let ok = ledger.fate(Fate::Dispatched);
                let interrupted = ledger.fate(Fate::Interrupted);
                let failed = ledger.fate(Fate::Failed {
                    error: source.to_string(),
                });
                let skipped = ledger.fate(Fate::NotAttempted);
                for n in 0..in_flight.len() {
                    let fate = if n < dispatched {
                        ok
                    } else if n < dispatched + in_doubt.len() {
                        interrupted
                    } else if n == dispatched && attempted_failed {
                        failed
                    } else {
                        skipped
                    };
                    ledger.set(in_flight.get(n), fate);
                }
                Err((source, not_attempted, in_doubt))
            }
        };
        let ledger = self.core.end(ScopePhase::Flushed, ledger, None);
        let report = FlushReport::new(self.core.info.clone(), ledger);
        match outcome {
            Ok(()) => {
                tracing::debug!(
                    target: "airlock::flush",
                    scope = %report.scope,
                    dispatched = in_flight.len(),
                    total = report.len(),
                    "scope flushed"
                );
                Ok(report)
            }
            Err((source, not_attempted, in_doubt)) => {
                let failure = DispatchFailure {
                    report,
                    source,
                    not_attempted,
                    in_doubt,
                };
                tracing::error!(target: "airlock::flush", error = %failure, "dispatch failed");
                Err(failure.into())
            }
        }
    }
}

impl Drop for PreparedFlush {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut ledger = std::mem::take(&mut self.ledger);
        if self.in_flight.len() != 0 {
            // Dropped while the executor was working (a cancelled async flush).
            let interrupted = ledger.fate(Fate::Interrupted);
            ledger.set_each(&self.in_flight, interrupted);
            tracing::warn!(
                target: "airlock::flush",
                scope = %self.core.info,
                interrupted = self.in_flight.len(),
                "dispatch cancelled part-way; some intents may not have been dispatched"
            );
            self.core.end(ScopePhase::Flushed, ledger, None);
            return;
        }
        let reason =
            DiscardReason::Requested("the prepared flush was dropped before dispatch".into());
        let discarded = ledger.fate(Fate::Discarded(reason.clone()));
        ledger.set_each(&self.survivor_entries, discarded);
        tracing::debug!(
            target: "airlock::flush",
            scope = %self.core.info,
            lost = self.survivors.len(),
            "prepared flush dropped; intents discarded"
        );
        self.core.end(ScopePhase::Discarded, ledger, Some(reason));
    }
}

/// Ends `core` logically and filters it; see the module docs.
pub(crate) fn prepare(core: Arc<ScopeCore>) -> Result<PreparedFlush, Error> {
    let buffer = core.close()?;
    let mut ledger = Ledger::with_capacity(buffer.len());
    if core.parent.is_some() {
        let (candidates, positions) = route_to_ancestors(&core, buffer, &mut ledger)?;
        filter(core, ledger, candidates, Entries::Noted(positions))
    } else {
        let scope = core.info.id;
        filter(core, ledger, buffer, Entries::Unnoted(scope))
    }
}

/// The ledger entries of a flush's candidates.
enum Entries {
    /// Noted already (a nested scope's candidates), at these positions.
    Noted(Positions),
    /// Not noted yet (an outermost scope's buffer, all its own or captured
    /// by it from scope `.0`'s descendants): the filter notes each candidate
    /// in order as it decides, in the pass it makes over them anyway.
    Unnoted(ScopeId),
}

/// Pass 1 of 2: asks every policy about every candidate before anything is
/// dispatched, and keeps the survivors (in place: no second buffer).
fn filter(
    core: Arc<ScopeCore>,
    mut ledger: Ledger,
    candidates: Buffer,
    entries: Entries,
) -> Result<PreparedFlush, Error> {
    let policed = candidates.is_policed();
    let mut intents = candidates.into_intents();
    // With `unnoted`, entry `k` will be candidate `k`'s.
    let (mut positions, unnoted) = match entries {
        Entries::Noted(positions) => (positions, None),
        Entries::Unnoted(scope) if !policed => {
            let buffered = ledger.fate(Fate::Buffered);
            ledger.note_all(&intents, scope, buffered);
            (Positions::First(intents.len()), None)
        }
        Entries::Unnoted(scope) => (Positions::First(intents.len()), Some(scope)),
    };
    if policed {
        // Per intent: 0 if every policy allows it, else 1 + where the
        // refusing link sits in its chain. A plain list of numbers, so the
        // same (reused) allocation then holds the survivors' positions.
        let mut verdicts = ledger::spare_positions();
        verdicts.reserve_exact(intents.len());
        let asked = std::panic::catch_unwind(AssertUnwindSafe(|| {
            in_policy(|| {
                verdicts.extend(intents.iter().map(|intent| {
                    PolicyLink::first_refusal_at(intent.chain.as_ref(), intent)
                        .map_or(0, |at| at + 1)
                }));
            })
        }));
        if let Err(panic) = asked {
            let info = &core.info;
            let message = panic_message(&*panic);
            let reason = DiscardReason::PolicyPanicked(message.clone());
            let discarded = ledger.fate(Fate::Discarded(reason.clone()));
            match unnoted {
                Some(scope) => ledger.note_all(&intents, scope, discarded),
                None => ledger.set_each(&positions, discarded),
            }
            tracing::error!(
                target: "airlock::flush",
                scope = %info,
                lost = positions.len(),
                %message,
                "a policy panicked while filtering; nothing was dispatched"
            );
            core.end(ScopePhase::Discarded, ledger, Some(reason));
            return Err(Error::PolicyPanicked {
                scope: info.clone(),
                message,
            });
        }
        if verdicts.iter().any(|&verdict| verdict != 0) {
            // The fate each refusing policy gives, found by identity: a
            // policy usually drops many intents. The link is held, since the
            // intents that lead to it are dropped as we go.
            let mut fates: Vec<(Arc<PolicyLink>, FateRef)> = Vec::new();
            let buffered = ledger.fate(Fate::Buffered);
            // One pass: each refused intent gets its fate and is dropped;
            // each survivor's index is written over the verdicts already read.
            let (mut k, mut kept) = (0, 0);
            intents.retain(|intent| {
                let verdict = verdicts[k];
                let position = positions.get(k);
                k += 1;
                if verdict == 0 {
                    if let Some(scope) = unnoted {
                        ledger.note(intent, scope, buffered);
                    }
                    verdicts[kept] = k - 1;
                    kept += 1;
                    return true;
                }
                let link = PolicyLink::nth(intent.chain.as_ref(), verdict - 1)
                    .expect("the refusing link is in the intent's chain");
                tracing::debug!(
                    target: "airlock::policy",
                    %intent,
                    policy = %link.name,
                    "intent dropped by policy"
                );
                let dropped = match fates.iter().find(|(l, _)| Arc::ptr_eq(l, link)) {
                    Some(&(_, fate)) => fate,
                    None => {
                        let fate = ledger.fate(Fate::Dropped {
                            policy: Arc::clone(&link.name),
                            source: link.source.clone(),
                        });
                        fates.push((Arc::clone(link), fate));
                        fate
                    }
                };
                match unnoted {
                    Some(scope) => {
                        ledger.note(intent, scope, dropped);
                    }
                    None => ledger.set(position, dropped),
                }
                false
            });
            verdicts.truncate(kept);
            // From survivors' indices to their ledger entries.
            if let Positions::Listed(entries) = &positions {
                verdicts.iter_mut().for_each(|s| *s = entries[*s]);
            }
            positions = Positions::Listed(verdicts);
        } else {
            if let Some(scope) = unnoted {
                let buffered = ledger.fate(Fate::Buffered);
                ledger.note_all(&intents, scope, buffered);
            }
            // Handed back to the spares as a list of positions.
            drop(Positions::Listed(verdicts));
        }
    }
    Ok(PreparedFlush {
        core,
        ledger,
        survivors: intents,
        survivor_entries: positions,
        in_flight: Positions::default(),
        finished: false,
    })
}

/// Hands each intent of a nested scope to the nearest ancestor that captures
/// it; intents every ancestor lets through are returned as dispatch candidates.
fn route_to_ancestors(
    core: &Arc<ScopeCore>,
    buffer: Buffer,
    ledger: &mut Ledger,
) -> Result<(Buffer, Positions), Error> {
    let info = &core.info;
    let ancestors: Vec<&Arc<ScopeCore>> = core.ancestors().collect();
    let parent = ancestors[0];
    // Which ancestor captures each intent (`NONE`: every one lets it
    // through), asking them in order. Listed only once an intent escapes the
    // parent: usually (the default behaviour) the parent takes them all.
    const NONE: usize = usize::MAX;
    let intents = buffer.as_slice();
    let parent_behavior = &*parent.behavior;
    let first_escape = intents
        .iter()
        .position(|intent| parent_behavior.allow_descendant_dispatch(info, intent));
    let escaped = first_escape.map(|first| {
        let above = |intent: &Intent| {
            ancestors[1..]
                .iter()
                .position(|a| !a.behavior.allow_descendant_dispatch(info, intent))
                .map_or(NONE, |n| n + 1)
        };
        let mut takers = vec![0; first];
        takers.push(above(&intents[first]));
        takers.extend(intents[first + 1..].iter().map(|intent| {
            if parent_behavior.allow_descendant_dispatch(info, intent) {
                above(intent)
            } else {
                0
            }
        }));
        takers
    });

    let mut candidates = Vec::new();
    let mut candidate_entries = Vec::new();
    let mut captured: Vec<(Buffer, Positions)> = Vec::with_capacity(ancestors.len());
    match escaped {
        None => {
            // Hand the buffer over whole, so capture costs a ledger entry per
            // intent and no copying, whatever the nesting depth.
            let by = ledger.fate(Fate::Captured {
                by: parent.info.clone(),
            });
            ledger.note_all(buffer.as_slice(), info.id, by);
            let positions = Positions::First(buffer.len());
            captured.push((buffer, positions));
        }
        Some(takers) => {
            let mut split: Vec<(Vec<Intent>, Vec<usize>)> =
                (0..ancestors.len()).map(|_| Default::default()).collect();
            let buffered = ledger.fate(Fate::Buffered);
            for (intent, taker) in buffer.into_intents().into_iter().zip(takers) {
                if taker == NONE {
                    candidate_entries.push(ledger.note(&intent, info.id, buffered));
                    candidates.push(intent);
                } else {
                    let by = ledger.fate(Fate::Captured {
                        by: ancestors[taker].info.clone(),
                    });
                    split[taker].1.push(ledger.note(&intent, info.id, by));
                    split[taker].0.push(intent);
                }
            }
            captured.extend(
                split
                    .into_iter()
                    .map(|(intents, entries)| (Buffer::of(intents), Positions::Listed(entries))),
            );
        }
    }

    let mut lost = Vec::new();
    for (a, (intents, entries)) in captured.into_iter().enumerate() {
        if intents.as_slice().is_empty() {
            continue;
        }
        if let Err(refused) = ancestors[a].capture(intents) {
            let discarded = ledger.fate(Fate::Discarded(DiscardReason::ParentClosed));
            ledger.set_each(&entries, discarded);
            lost.extend(refused.as_slice().iter().map(ToString::to_string));
            tracing::error!(
                target: "airlock::flush",
                scope = %info,
                parent = %ancestors[a].info,
                lost = refused.as_slice().len(),
                "a nested scope ended after its parent; its intents were discarded"
            );
        }
    }
    let candidate_entries = Positions::Listed(candidate_entries);
    if !lost.is_empty() {
        // Anything left to dispatch early is discarded too: the boundary that
        // should have decided is gone.
        let discarded = ledger.fate(Fate::Discarded(DiscardReason::ParentClosed));
        ledger.set_each(&candidate_entries, discarded);
        let parent = core.parent.as_ref().map(|p| p.info.clone());
        core.end(
            ScopePhase::Discarded,
            std::mem::take(ledger),
            Some(DiscardReason::ParentClosed),
        );
        return Err(Error::ParentClosed {
            scope: info.clone(),
            parent: parent.expect("a nested scope has a parent"),
            lost,
        });
    }
    Ok((Buffer::of(candidates), candidate_entries))
}

/// Ends `core` by discarding everything it buffered.
pub(crate) fn discard(core: &Arc<ScopeCore>, reason: DiscardReason) -> FlushReport {
    let intents = {
        let mut state = core.state();
        if state.phase != ScopePhase::Open {
            return FlushReport::new(core.info.clone(), state.ledger());
        }
        state.buffer.take().into_intents()
    };
    if intents.is_empty() {
        tracing::trace!(target: "airlock::scope", scope = %core.info, %reason, "scope discarded");
    } else {
        tracing::debug!(
            target: "airlock::scope",
            scope = %core.info,
            lost = intents.len(),
            %reason,
            "scope discarded its intents"
        );
    }
    let ledger = end_discarded(core, &intents, reason);
    // The arguments are dropped here, outside the lock (their `Drop` is user code).
    buffer::recycle(intents);
    FlushReport::new(core.info.clone(), ledger)
}

/// Ends `core` as discarded, noting `intents` (taken from its buffer) as
/// discarded for `reason`.
pub(crate) fn end_discarded(
    core: &ScopeCore,
    intents: &[Intent],
    reason: DiscardReason,
) -> Arc<Ledger> {
    let mut ledger = Ledger::with_capacity(intents.len());
    let discarded = ledger.fate(Fate::Discarded(reason.clone()));
    ledger.note_all(intents, core.info.id, discarded);
    core.end(ScopePhase::Discarded, ledger, Some(reason))
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned())
}

#[cfg(test)]
mod tests {
    /// Every buffered intent costs this much memory; keep it from growing by
    /// accident (a field added inline instead of boxed).
    #[test]
    fn buffered_intents_stay_small() {
        assert!(std::mem::size_of::<crate::Intent>() <= 72);
    }
}
