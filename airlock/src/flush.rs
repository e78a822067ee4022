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
//! Afterwards the scope keeps an [`IntentRecord`] per intent saying what became
//! of it.

use std::fmt;
use std::panic::{AssertUnwindSafe, Location};
use std::sync::Arc;

use crate::error::{BoxError, Error};
use crate::executor::{DispatchError, Executor};
use crate::intent::{Intent, IntentId};
use crate::policy::chain::{in_policy, PolicyLink, PolicySource};
use crate::scope::core::ScopeCore;
use crate::scope::{DiscardReason, ScopeInfo, ScopePhase};
use crate::task::TaskDef;

/// What became of one intent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fate {
    /// Still in the buffer of an open scope.
    Buffered,
    /// Handed to the executor successfully.
    Dispatched,
    /// A policy's `allows` refused it at flush.
    Dropped {
        /// The refusing policy's name.
        policy: Arc<str>,
        /// Whether it was a `with_policy` block or which scope's policy.
        source: PolicySource,
    },
    /// Handed up to this ancestor scope, which now decides.
    Captured {
        /// The capturing scope.
        by: ScopeInfo,
    },
    /// The executor attempted it and failed.
    Failed {
        /// The executor's error message.
        error: String,
    },
    /// Not attempted, because an earlier intent in the same flush failed.
    NotAttempted,
    /// Handed to the executor, but the dispatch was cancelled (its future was
    /// dropped) before the executor reported back, or the executor sent it to
    /// a broker whose answer never came
    /// ([`DispatchError::in_doubt`](crate::executor::DispatchError::in_doubt)):
    /// it may or may not have been dispatched.
    Interrupted,
    /// Thrown away with the scope.
    Discarded(DiscardReason),
}

/// One intent's identity and fate, kept after its arguments are gone.
#[derive(Debug, Clone)]
pub struct IntentRecord {
    /// The intent's id.
    pub id: IntentId,
    /// Its task.
    pub task: &'static TaskDef,
    /// Where it was enqueued.
    pub origin: &'static Location<'static>,
    /// Whether it was enqueued directly in this scope (`false`: captured from a
    /// nested scope).
    pub own: bool,
    /// What became of it.
    pub fate: Fate,
}

impl IntentRecord {
    pub(crate) fn of(intent: &Intent, scope: &ScopeInfo, fate: Fate) -> Self {
        IntentRecord {
            id: intent.id(),
            task: intent.task(),
            origin: intent.origin(),
            own: intent.scope == Some(scope.id),
            fate,
        }
    }
}

impl fmt::Display for IntentRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} (enqueued at {}): ",
            self.task.name(),
            self.id,
            self.origin
        )?;
        match &self.fate {
            Fate::Buffered => f.write_str("buffered"),
            Fate::Dispatched => f.write_str("dispatched"),
            Fate::Dropped { policy, source } => match source {
                PolicySource::Local => write!(f, "dropped by local policy {policy}"),
                PolicySource::Scope(scope) => write!(f, "dropped by policy {policy} of {scope}"),
            },
            Fate::Captured { by } => write!(f, "captured by {by}"),
            Fate::Failed { error } => write!(f, "failed: {error}"),
            Fate::NotAttempted => f.write_str("not attempted"),
            Fate::Interrupted => {
                f.write_str("dispatch interrupted; it may or may not have been dispatched")
            }
            Fate::Discarded(reason) => write!(f, "discarded ({reason})"),
        }
    }
}

/// What a scope did with its intents when it ended.
#[derive(Debug, Clone)]
pub struct FlushReport {
    /// The scope.
    pub scope: ScopeInfo,
    /// One record per intent, in FIFO order (shared with the scope).
    pub records: Arc<Vec<IntentRecord>>,
}

impl FlushReport {
    /// The records whose fate matches `pred`.
    pub fn matching(&self, pred: impl Fn(&Fate) -> bool) -> impl Iterator<Item = &IntentRecord> {
        self.records.iter().filter(move |r| pred(&r.fate))
    }

    /// Names of the dispatched tasks, in order.
    pub fn dispatched(&self) -> Vec<&'static str> {
        self.names(|f| matches!(f, Fate::Dispatched))
    }

    /// Names of the tasks dropped by a policy, in order.
    pub fn dropped(&self) -> Vec<&'static str> {
        self.names(|f| matches!(f, Fate::Dropped { .. }))
    }

    /// Names of the tasks handed up to an ancestor, in order.
    pub fn captured(&self) -> Vec<&'static str> {
        self.names(|f| matches!(f, Fate::Captured { .. }))
    }

    /// Names of the tasks discarded with the scope, in order.
    pub fn discarded(&self) -> Vec<&'static str> {
        self.names(|f| matches!(f, Fate::Discarded(_)))
    }

    fn names(&self, pred: impl Fn(&Fate) -> bool) -> Vec<&'static str> {
        self.matching(pred).map(|r| r.task.name()).collect()
    }
}

impl fmt::Display for FlushReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} intent(s)", self.scope, self.records.len())?;
        for record in self.records.iter() {
            write!(f, "\n  {record}")?;
        }
        Ok(())
    }
}

/// The executor failed part-way through a flush (fail-fast): the report says
/// which intents were dispatched, which failed and which were never attempted;
/// the never-attempted intents are handed back so nothing is lost.
#[derive(Debug)]
pub struct DispatchFailure {
    /// What became of every intent of the flush.
    pub report: FlushReport,
    /// The executor's error.
    pub source: BoxError,
    /// The intents the executor never attempted, in FIFO order, for a retry.
    pub not_attempted: Vec<Intent>,
    /// The intents sent to a broker whose answer never came (reported
    /// [`Fate::Interrupted`]), in FIFO order: they may already be queued, so
    /// retry them only where running one twice is acceptable, or after
    /// checking the queue.
    pub in_doubt: Vec<Intent>,
}

impl fmt::Display for DispatchFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dispatch failed in {}", self.report.scope)?;
        if let Some(failed) = self
            .report
            .matching(|f| matches!(f, Fate::Failed { .. }))
            .next()
        {
            write!(f, " at `{}`", failed.task.name())?;
        }
        write!(f, ": {}", self.source)?;
        if !self.in_doubt.is_empty() {
            let in_doubt: Vec<_> = self.in_doubt.iter().map(Intent::name).collect();
            write!(
                f,
                " [sent, but the answer was lost, so they may or may not be dispatched, handed \
                 back in DispatchFailure::in_doubt: {in_doubt:?}]"
            )?;
        }
        let dispatched = self.report.dispatched();
        if !dispatched.is_empty() || !self.not_attempted.is_empty() {
            let not_attempted: Vec<_> = self.not_attempted.iter().map(Intent::name).collect();
            write!(
                f,
                " [dispatched before the failure: {dispatched:?}; not attempted, handed back in \
                 DispatchFailure::not_attempted: {not_attempted:?}]"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for DispatchFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// A scope that has ended logically and been filtered, whose survivors are not
/// dispatched yet. Dispatch it later (e.g. after a commit) with
/// [`dispatch`](Self::dispatch) or [`dispatch_async`](Self::dispatch_async);
/// dropping it discards the survivors.
#[must_use = "dropping a PreparedFlush discards its intents; call dispatch()"]
pub struct PreparedFlush {
    core: Arc<ScopeCore>,
    records: Vec<IntentRecord>,
    survivors: Vec<Intent>,
    /// Record index of each survivor.
    survivor_records: Vec<usize>,
    /// Record indices of the survivors handed to the executor.
    in_flight: Vec<usize>,
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
    pub fn dispatch(self) -> Result<FlushReport, Error> {
        let executor = Arc::clone(&self.core.executor);
        self.dispatch_with(&*executor)
    }

    /// Dispatches the survivors with `executor` instead of the scope's own.
    ///
    /// # Errors
    /// [`Error::Dispatch`] if the executor fails.
    pub fn dispatch_with(mut self, executor: &dyn Executor) -> Result<FlushReport, Error> {
        let intents = self.take_survivors();
        let result = if intents.is_empty() {
            Ok(())
        } else {
            let _span = self.span(intents.len()).entered();
            executor.dispatch(intents)
        };
        self.complete(result)
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
        let result = if intents.is_empty() {
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

    /// Hands the survivors to a dispatcher outside the executor (a transaction
    /// scope's co-commit); end with [`complete`](Self::complete) or
    /// [`abort`](Self::abort).
    pub(crate) fn take_survivors(&mut self) -> Vec<Intent> {
        self.in_flight = std::mem::take(&mut self.survivor_records);
        std::mem::take(&mut self.survivors)
    }

    /// Ends the scope with nothing dispatched: every survivor (handed out or
    /// not) is discarded for `reason`.
    #[cfg_attr(not(feature = "sqlx"), allow(dead_code))]
    pub(crate) fn abort(mut self, reason: DiscardReason) -> FlushReport {
        self.finished = true;
        let mut records = std::mem::take(&mut self.records);
        let lost: Vec<usize> = std::mem::take(&mut self.in_flight)
            .into_iter()
            .chain(std::mem::take(&mut self.survivor_records))
            .collect();
        for &i in &lost {
            records[i].fate = Fate::Discarded(reason.clone());
        }
        tracing::debug!(
            target: "airlock::flush",
            scope = %self.core.info,
            lost = lost.len(),
            %reason,
            "scope discarded after filtering"
        );
        FlushReport {
            scope: self.core.info.clone(),
            records: self.core.end(ScopePhase::Discarded, records, Some(reason)),
        }
    }

    pub(crate) fn complete(
        mut self,
        result: Result<(), DispatchError>,
    ) -> Result<FlushReport, Error> {
        self.finished = true;
        let indices = std::mem::take(&mut self.in_flight);
        let mut records = std::mem::take(&mut self.records);
        let info = self.core.info.clone();
        let outcome = match result {
            Ok(()) => {
                for &i in &indices {
                    records[i].fate = Fate::Dispatched;
                }
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
                for (n, &i) in indices.iter().enumerate() {
                    records[i].fate = if n < dispatched {
                        Fate::Dispatched
                    } else if n < dispatched + in_doubt.len() {
                        Fate::Interrupted
                    } else if n == dispatched && attempted_failed {
                        Fate::Failed {
                            error: source.to_string(),
                        }
                    } else {
                        Fate::NotAttempted
                    };
                }
                Err((source, not_attempted, in_doubt))
            }
        };
        let report = FlushReport {
            scope: info,
            records: self.core.end(ScopePhase::Flushed, records, None),
        };
        match outcome {
            Ok(()) => {
                tracing::debug!(
                    target: "airlock::flush",
                    scope = %report.scope,
                    dispatched = indices.len(),
                    total = report.records.len(),
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
        let mut records = std::mem::take(&mut self.records);
        if !self.in_flight.is_empty() {
            // Dropped while the executor was working (a cancelled async flush).
            for &i in &self.in_flight {
                records[i].fate = Fate::Interrupted;
            }
            tracing::warn!(
                target: "airlock::flush",
                scope = %self.core.info,
                interrupted = self.in_flight.len(),
                "dispatch cancelled part-way; some intents may not have been dispatched"
            );
            self.core.end(ScopePhase::Flushed, records, None);
            return;
        }
        let reason =
            DiscardReason::Requested("the prepared flush was dropped before dispatch".into());
        for &i in &self.survivor_records {
            records[i].fate = Fate::Discarded(reason.clone());
        }
        tracing::debug!(
            target: "airlock::flush",
            scope = %self.core.info,
            lost = self.survivors.len(),
            "prepared flush dropped; intents discarded"
        );
        self.core.end(ScopePhase::Discarded, records, Some(reason));
    }
}

/// Ends `core` logically and filters it; see the module docs.
pub(crate) fn prepare(core: &Arc<ScopeCore>) -> Result<PreparedFlush, Error> {
    let intents = core.close()?;
    let info = &core.info;
    let mut records = Vec::with_capacity(intents.len());
    if core.parent.is_some() {
        let mut candidates = Vec::new();
        route_to_ancestors(core, intents, &mut records, &mut candidates)?;
        let (indices, intents) = candidates.into_iter().unzip();
        filter(core, records, intents, indices)
    } else {
        records.extend(
            intents
                .iter()
                .map(|intent| IntentRecord::of(intent, info, Fate::Buffered)),
        );
        let indices = (0..intents.len()).collect();
        filter(core, records, intents, indices)
    }
}

/// Pass 1 of 2: asks every policy about every candidate before anything is
/// dispatched, and keeps the survivors (in place: no second buffer).
/// `indices[k]` is the record of `intents[k]`.
fn filter(
    core: &Arc<ScopeCore>,
    mut records: Vec<IntentRecord>,
    mut intents: Vec<Intent>,
    mut indices: Vec<usize>,
) -> Result<PreparedFlush, Error> {
    let verdicts = std::panic::catch_unwind(AssertUnwindSafe(|| {
        in_policy(|| {
            intents
                .iter()
                .map(|intent| PolicyLink::first_refusal(intent.chain.as_ref(), intent))
                .collect::<Vec<Option<&PolicyLink>>>()
        })
    }));
    let verdicts = match verdicts {
        Ok(verdicts) => verdicts,
        Err(panic) => {
            let info = &core.info;
            let message = panic_message(&*panic);
            let reason = DiscardReason::PolicyPanicked(message.clone());
            for &i in &indices {
                records[i].fate = Fate::Discarded(reason.clone());
            }
            tracing::error!(
                target: "airlock::flush",
                scope = %info,
                lost = indices.len(),
                %message,
                "a policy panicked while filtering; nothing was dispatched"
            );
            core.end(ScopePhase::Discarded, records, Some(reason));
            return Err(Error::PolicyPanicked {
                scope: info.clone(),
                message,
            });
        }
    };
    if verdicts.iter().any(Option::is_some) {
        let mut keep = Vec::with_capacity(verdicts.len());
        for (k, verdict) in verdicts.into_iter().enumerate() {
            keep.push(verdict.is_none());
            if let Some(link) = verdict {
                tracing::debug!(
                    target: "airlock::policy",
                    intent = %intents[k],
                    policy = %link.name,
                    "intent dropped by policy"
                );
                records[indices[k]].fate = Fate::Dropped {
                    policy: Arc::clone(&link.name),
                    source: link.source.clone(),
                };
            }
        }
        let mut kept = keep.iter();
        intents.retain(|_| *kept.next().expect("one verdict per intent"));
        let mut kept = keep.iter();
        indices.retain(|_| *kept.next().expect("one verdict per intent"));
    }
    Ok(PreparedFlush {
        core: Arc::clone(core),
        records,
        survivors: intents,
        survivor_records: indices,
        in_flight: Vec::new(),
        finished: false,
    })
}

/// Hands each intent of a nested scope to the nearest ancestor that captures
/// it; intents every ancestor lets through become dispatch candidates.
fn route_to_ancestors(
    core: &Arc<ScopeCore>,
    intents: Vec<Intent>,
    records: &mut Vec<IntentRecord>,
    candidates: &mut Vec<(usize, Intent)>,
) -> Result<(), Error> {
    let info = &core.info;
    let ancestors: Vec<&Arc<ScopeCore>> = core.ancestors().collect();
    // Which ancestor captures each intent (`NONE`: every one lets it through).
    const NONE: usize = usize::MAX;
    let takers: Vec<usize> = intents
        .iter()
        .map(|intent| {
            ancestors
                .iter()
                .position(|a| !a.behavior.allow_descendant_dispatch(info, intent))
                .unwrap_or(NONE)
        })
        .collect();

    let mut captured: Vec<Vec<Intent>> = (0..ancestors.len()).map(|_| Vec::new()).collect();
    let mut captured_records: Vec<Vec<usize>> = (0..ancestors.len()).map(|_| Vec::new()).collect();
    if takers.iter().all(|&a| a == 0) {
        // The common case (the default behaviour): the parent takes them all.
        // Hand the buffer over whole, so capture costs a record per intent and
        // no copying, whatever the nesting depth.
        let by = &ancestors[0].info;
        records.extend(
            intents
                .iter()
                .map(|intent| IntentRecord::of(intent, info, Fate::Captured { by: by.clone() })),
        );
        captured_records[0].extend(0..records.len());
        captured[0] = intents;
    } else {
        for (intent, taker) in intents.into_iter().zip(takers) {
            if taker == NONE {
                records.push(IntentRecord::of(&intent, info, Fate::Buffered));
                candidates.push((records.len() - 1, intent));
            } else {
                records.push(IntentRecord::of(
                    &intent,
                    info,
                    Fate::Captured {
                        by: ancestors[taker].info.clone(),
                    },
                ));
                captured_records[taker].push(records.len() - 1);
                captured[taker].push(intent);
            }
        }
    }

    let mut lost = Vec::new();
    for (a, intents) in captured.into_iter().enumerate() {
        if intents.is_empty() {
            continue;
        }
        if let Err(refused) = ancestors[a].capture(intents) {
            for &i in &captured_records[a] {
                records[i].fate = Fate::Discarded(DiscardReason::ParentClosed);
            }
            lost.extend(refused.iter().map(ToString::to_string));
            tracing::error!(
                target: "airlock::flush",
                scope = %info,
                parent = %ancestors[a].info,
                lost = refused.len(),
                "a nested scope ended after its parent; its intents were discarded"
            );
        }
    }
    if !lost.is_empty() {
        // Anything left to dispatch early is discarded too: the boundary that
        // should have decided is gone.
        for (i, _) in candidates.drain(..) {
            records[i].fate = Fate::Discarded(DiscardReason::ParentClosed);
        }
        let parent = core.parent.as_ref().map(|p| p.info.clone());
        core.end(
            ScopePhase::Discarded,
            std::mem::take(records),
            Some(DiscardReason::ParentClosed),
        );
        return Err(Error::ParentClosed {
            scope: info.clone(),
            parent: parent.expect("a nested scope has a parent"),
            lost,
        });
    }
    Ok(())
}

/// Ends `core` by discarding everything it buffered.
pub(crate) fn discard(core: &ScopeCore, reason: DiscardReason) -> FlushReport {
    let intents = {
        let mut state = core.state();
        if state.phase != ScopePhase::Open {
            return FlushReport {
                scope: core.info.clone(),
                records: Arc::clone(&state.records),
            };
        }
        state.buffer.take()
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
    FlushReport {
        scope: core.info.clone(),
        records: end_discarded(core, &intents, reason),
    }
}

/// Ends `core` as discarded, recording `intents` (taken from its buffer) as
/// discarded for `reason`.
pub(crate) fn end_discarded(
    core: &ScopeCore,
    intents: &[Intent],
    reason: DiscardReason,
) -> Arc<Vec<IntentRecord>> {
    let records = intents
        .iter()
        .map(|intent| IntentRecord::of(intent, &core.info, Fate::Discarded(reason.clone())))
        .collect();
    core.end(ScopePhase::Discarded, records, Some(reason))
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
    /// Every buffered intent and every record costs this much memory; keep
    /// them from growing by accident (a field added inline instead of boxed).
    #[test]
    fn buffered_intents_and_records_stay_small() {
        assert!(std::mem::size_of::<crate::Intent>() <= 72);
        assert!(std::mem::size_of::<super::IntentRecord>() <= 80);
    }
}
