//! What a flush reports: each intent's [`Fate`], as [`IntentRecord`]s in a
//! [`FlushReport`], and the [`DispatchFailure`] that hands back what an
//! executor did not dispatch.

use std::fmt;
use std::panic::Location;
use std::sync::Arc;

use crate::error::BoxError;
use crate::flush::ledger::Ledger;
use crate::intent::{Intent, IntentId};
use crate::policy::chain::PolicySource;
use crate::scope::{DiscardReason, ScopeInfo};
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
