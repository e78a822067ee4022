//! What became of each intent: its [`Fate`], kept in an [`IntentRecord`].

use std::fmt;
use std::panic::Location;
use std::sync::Arc;

use crate::intent::{Intent, IntentId};
use crate::policy::chain::PolicySource;
use crate::scope::info::{DiscardReason, ScopeInfo};
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
