//! What a flush reports: each intent's [`Fate`], as [`IntentRecord`]s in a
//! [`FlushReport`], and the [`DispatchFailure`] that hands back what an
//! executor did not dispatch.

use std::fmt;
use std::sync::Arc;

use crate::error::BoxError;
use crate::flush::ledger::Ledger;
use crate::flush::record::{Fate, IntentRecord};
use crate::intent::Intent;
use crate::scope::info::ScopeInfo;

/// What a scope did with its intents when it ended.
///
/// Cheap to produce: the records are built from the scope's compact ledger the
/// first time [`records`](Self::records) or [`matching`](Self::matching) is
/// called (the name lists such as [`dispatched`](Self::dispatched) do not
/// need them).
#[derive(Clone)]
pub struct FlushReport {
    /// The scope.
    pub scope: ScopeInfo,
    ledger: Arc<Ledger>,
}

impl FlushReport {
    pub(crate) fn new(scope: ScopeInfo, ledger: Arc<Ledger>) -> Self {
        FlushReport { scope, ledger }
    }

    /// One record per intent, in FIFO order (shared with the scope's
    /// [`ScopeHandle::records`](crate::ScopeHandle::records)).
    pub fn records(&self) -> &[IntentRecord] {
        self.ledger.records()
    }

    /// How many intents the scope handled.
    pub fn len(&self) -> usize {
        self.ledger.len()
    }

    /// Whether the scope handled no intent.
    pub fn is_empty(&self) -> bool {
        self.ledger.len() == 0
    }

    /// The records whose fate matches `pred`.
    pub fn matching(&self, pred: impl Fn(&Fate) -> bool) -> impl Iterator<Item = &IntentRecord> {
        self.records().iter().filter(move |r| pred(&r.fate))
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
        self.ledger.names(pred)
    }
}

impl fmt::Debug for FlushReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlushReport")
            .field("scope", &self.scope)
            .field("records", &self.records())
            .finish()
    }
}

impl fmt::Display for FlushReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} intent(s)", self.scope, self.len())?;
        for record in self.records() {
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
