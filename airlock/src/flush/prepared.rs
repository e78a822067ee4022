//! A scope ended and filtered, its survivors waiting for an executor:
//! [`PreparedFlush`], pass 2 of the flush, and the ledger entries that say
//! how the dispatch went.

use std::fmt;
use std::sync::Arc;

use crate::buffer;
use crate::error::Error;
use crate::executor::{DispatchError, Executor};
use crate::flush::ledger::{Ledger, Positions};
use crate::flush::record::Fate;
use crate::flush::report::{DispatchFailure, FlushReport};
use crate::intent::Intent;
use crate::scope::core::ScopeCore;
use crate::scope::info::{DiscardReason, ScopePhase};

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
    /// The filtered flush of `core`: `survivors`, whose ledger entries are
    /// at `positions`, wait for an executor.
    pub(crate) fn new(
        core: Arc<ScopeCore>,
        ledger: Ledger,
        survivors: Vec<Intent>,
        positions: Positions,
    ) -> Self {
        PreparedFlush {
            core,
            ledger,
            survivors,
            survivor_entries: positions,
            in_flight: Positions::default(),
            finished: false,
        }
    }

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
