//! A scope's identity and the plain facts reports and errors tell about it:
//! its id and name, its phase, why it discarded, its durability.

use std::borrow::Cow;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};

/// A process-unique scope identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScopeId(NonZeroU64);

impl ScopeId {
    /// The next id of the process.
    pub(crate) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        ScopeId(NonZeroU64::new(id).expect("scope ids start at 1 and do not wrap"))
    }

    /// The numeric value.
    pub fn get(self) -> u64 {
        self.0.get()
    }
}

/// A scope's identity, for reports, errors and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeInfo {
    /// The scope's id.
    pub id: ScopeId,
    /// The name given with [`Scope::name`](crate::Scope::name) (or the function name for `#[scoped]`).
    pub name: Option<Cow<'static, str>>,
}

impl fmt::Display for ScopeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "scope `{name}` (#{})", self.id.0),
            None => write!(f, "scope #{}", self.id.0),
        }
    }
}

/// Where a scope is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ScopePhase {
    /// Taking intents.
    Open = 0,
    /// Logically ended and filtered; the dispatch is pending (see [`crate::PreparedFlush`]).
    Flushing = 1,
    /// Ended by flushing: intents were dispatched, dropped or handed to the parent.
    Flushed = 2,
    /// Ended by discarding: nothing was dispatched.
    Discarded = 3,
}

impl fmt::Display for ScopePhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScopePhase::Open => "is open",
            ScopePhase::Flushing => "started flushing",
            ScopePhase::Flushed => "been flushed",
            ScopePhase::Discarded => "been discarded",
        })
    }
}

/// Why a scope discarded its intents.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiscardReason {
    /// The scope's body returned an error.
    Error,
    /// The scope's body panicked.
    Panic,
    /// The scope's future was dropped before it completed.
    Cancelled,
    /// The [`ActiveScope`](crate::ActiveScope) was dropped without being flushed or discarded.
    Abandoned,
    /// A policy panicked while flush was filtering; nothing was dispatched.
    PolicyPanicked(String),
    /// The scope ended after its parent had already ended, so there was no one
    /// to hand its intents to.
    ParentClosed,
    /// [`ActiveScope::discard`](crate::ActiveScope::discard) was called with this reason.
    Requested(Cow<'static, str>),
    /// The scope's database transaction rolled back (explicitly, by an error
    /// in the body, or by being dropped uncommitted).
    RolledBack,
    /// The scope's database transaction failed to commit.
    CommitFailed(String),
}

impl fmt::Display for DiscardReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscardReason::Error => f.write_str("the scope returned an error"),
            DiscardReason::Panic => f.write_str("the scope panicked"),
            DiscardReason::Cancelled => {
                f.write_str("the scope's future was dropped before completion")
            }
            DiscardReason::Abandoned => f.write_str("the scope was dropped without being flushed"),
            DiscardReason::PolicyPanicked(msg) => {
                write!(f, "a policy panicked during flush: {msg}")
            }
            DiscardReason::ParentClosed => f.write_str("the parent scope had already ended"),
            DiscardReason::Requested(why) => f.write_str(why),
            DiscardReason::RolledBack => f.write_str("the scope's transaction rolled back"),
            DiscardReason::CommitFailed(error) => {
                write!(f, "the scope's transaction failed to commit: {error}")
            }
        }
    }
}

/// How a transaction scope's intents leave, relative to its database
/// transaction's commit. Chosen explicitly when the scope starts (see
/// [`tx`](crate::tx), feature `sqlx`) and shown by
/// [`ScopeHandle::durability`](crate::ScopeHandle::durability).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// Dispatched by the scope's executor only after `COMMIT` succeeded;
    /// discarded on rollback. Works with any executor, but a process that
    /// dies between the commit and the dispatch loses the intents.
    AfterCommit,
    /// Written as queue jobs into the same transaction as the business data,
    /// so they commit or roll back together: a crash at any point loses no
    /// committed intent and runs no rolled-back one. Needs the queue's tables
    /// in the transaction's own database (apalis SQLite or PostgreSQL).
    CoCommit,
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Durability::AfterCommit => "after-commit",
            Durability::CoCommit => "co-commit",
        })
    }
}
