//! The chain of policies an intent must pass: a singly linked list from the
//! innermost `with_policy` block or scope out to the outermost scope.
//!
//! Every frame on the context stack points at its chain, so an intent takes
//! the chain of the frame it is enqueued under with one reference-count bump,
//! and nested frames share the links of the frames around them.

use std::any::Any;
use std::cell::Cell;
use std::sync::Arc;

use crate::error::PolicyViolation;
use crate::intent::Intent;
use crate::policy::builtin::{AllowAll, BlockTasks, DropAll, LogOnFlush};
use crate::policy::Policy;
use crate::scope::ScopeInfo;

/// Where a policy in the chain came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// A [`with_policy`](crate::with_policy) block.
    Local,
    /// The policy of this scope.
    Scope(ScopeInfo),
}

/// A policy as a scope, a `with_policy` block or the configuration holds
/// it, with what its type says of its enqueue hook: the built-in policies
/// that only filter at flush (`AllowAll`, `DropAll`, `LogOnFlush`, a
/// `BlockTasks` that does not reject at enqueue) never refuse there, so
/// intents under them need not wait for `on_enqueue` calls that cannot say
/// no (`in_process_table`'s DropAll and BlockTasks rows). Known from the
/// policy the user chose, never from an answer a user's policy could get
/// wrong: any other policy's `on_enqueue` is always called.
#[derive(Clone, Debug)]
pub(crate) struct HeldPolicy {
    pub(crate) policy: Arc<dyn Policy>,
    checks_enqueue: bool,
}

impl HeldPolicy {
    pub(crate) fn new<P: Policy>(policy: P) -> Self {
        let any: &dyn Any = &policy;
        let checks_enqueue = if let Some(block) = any.downcast_ref::<BlockTasks>() {
            block.rejects_at_enqueue()
        } else {
            !(any.is::<AllowAll>() || any.is::<DropAll>() || any.is::<LogOnFlush>())
        };
        HeldPolicy {
            policy: Arc::new(policy),
            checks_enqueue,
        }
    }

    /// A policy shared as a trait object, whose type is not known: its
    /// `on_enqueue` is called.
    pub(crate) fn shared(policy: Arc<dyn Policy>) -> Self {
        HeldPolicy {
            policy,
            checks_enqueue: true,
        }
    }
}

#[derive(Debug)]
pub(crate) struct PolicyLink {
    pub(crate) policy: Arc<dyn Policy>,
    /// `policy.name()`, computed once: reports name the policy per intent.
    pub(crate) name: Arc<str>,
    pub(crate) source: PolicySource,
    /// Whether this link's `on_enqueue` may refuse (see [`HeldPolicy`]).
    checks_here: bool,
    /// Whether this link or one further out may refuse at enqueue.
    pub(crate) checks_enqueue: bool,
    next: Option<Arc<PolicyLink>>,
}

impl PolicyLink {
    /// Prepends `policies` (outermost-last order: the first one is checked first)
    /// to `next`.
    pub(crate) fn extend(
        next: Option<Arc<PolicyLink>>,
        policies: &[HeldPolicy],
        source: &PolicySource,
    ) -> Option<Arc<PolicyLink>> {
        policies.iter().rev().fold(next, |next, held| {
            Some(Arc::new(PolicyLink {
                policy: Arc::clone(&held.policy),
                name: held.policy.name().into(),
                source: source.clone(),
                checks_here: held.checks_enqueue,
                checks_enqueue: held.checks_enqueue
                    || next.as_ref().is_some_and(|next| next.checks_enqueue),
                next,
            }))
        })
    }

    /// A chain of only the `with_policy` links of `start`, in the same order.
    pub(crate) fn locals_only(start: Option<&Arc<PolicyLink>>) -> Option<Arc<PolicyLink>> {
        let locals: Vec<HeldPolicy> = Self::iter(start)
            .filter(|link| link.source == PolicySource::Local)
            .map(|link| HeldPolicy {
                policy: Arc::clone(&link.policy),
                checks_enqueue: link.checks_here,
            })
            .collect();
        Self::extend(None, &locals, &PolicySource::Local)
    }

    pub(crate) fn iter(start: Option<&Arc<PolicyLink>>) -> impl Iterator<Item = &PolicyLink> {
        std::iter::successors(start.map(|a| &**a), |link| link.next.as_deref())
    }

    /// Runs every `on_enqueue` in the chain, innermost first.
    pub(crate) fn check_enqueue(
        start: Option<&Arc<PolicyLink>>,
        intent: &Intent,
    ) -> Result<(), PolicyViolation> {
        if !start.is_some_and(|link| link.checks_enqueue) {
            return Ok(());
        }
        in_policy(|| {
            Self::iter(start)
                .filter(|link| link.checks_here)
                .try_for_each(|link| link.policy.on_enqueue(intent))
        })
    }

    /// The link `n` steps down the chain from `start` (0: `start` itself).
    pub(crate) fn nth(start: Option<&Arc<PolicyLink>>, n: usize) -> Option<&Arc<PolicyLink>> {
        std::iter::successors(start, |link| link.next.as_ref()).nth(n)
    }

    /// Where the first link whose `allows` refuses the intent sits in the
    /// chain from `start` (0: `start` itself), innermost first.
    pub(crate) fn first_refusal_at(
        start: Option<&Arc<PolicyLink>>,
        intent: &Intent,
    ) -> Option<usize> {
        Self::iter(start).position(|link| !link.policy.allows(intent))
    }
}

thread_local! {
    static IN_POLICY: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` marked as policy code: `enqueue` inside it fails with `PolicyEnqueue`.
pub(crate) fn in_policy<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            IN_POLICY.with(|flag| flag.set(self.0));
        }
    }
    let _reset = Reset(IN_POLICY.with(|flag| flag.replace(true)));
    f()
}

pub(crate) fn is_in_policy() -> bool {
    IN_POLICY.with(Cell::get)
}
