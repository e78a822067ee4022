//! Policies decide *what* escapes: they observe (or reject) each intent as it is
//! enqueued, and gate it at flush.
//!
//! A policy can sit on a scope ([`Scope::policy`](crate::Scope::policy)) or on a
//! block of code ([`with_policy`]). Either way an intent is checked by every
//! policy between where it was enqueued and the outermost scope:
//!
//! * at enqueue, `on_enqueue` of each of them, innermost first: any `Err` rejects
//!   the intent, which is then not buffered;
//! * at flush, `allows` of each of them, innermost first: the first `false` drops
//!   the intent, and the scope's report names that policy.
//!
//! Flush filters every intent before it dispatches any, so a policy that panics
//! during the filter dispatches nothing. Calling `enqueue` from a policy is an
//! error ([`Error::PolicyEnqueue`](crate::Error::PolicyEnqueue)).

pub(crate) mod builtin;
pub(crate) mod chain;
mod local;

use std::fmt;
use std::sync::Arc;

pub use builtin::{AllowAll, AssertNoEffects, BlockTasks, DropAll, LogOnFlush};
pub use chain::PolicySource;
pub use local::{with_policy, with_policy_async, WithPolicy};

use crate::intent::Intent;

/// Decides what escapes. Both methods have permissive defaults.
///
/// ```
/// use airlock::{Intent, Policy};
///
/// /// Lets only tasks whose name starts with `audit.` through.
/// #[derive(Debug)]
/// struct AuditOnly;
///
/// impl Policy for AuditOnly {
///     fn allows(&self, intent: &Intent) -> bool {
///         intent.name().starts_with("audit.")
///     }
/// }
///
/// #[airlock::task(name = "audit.record")]
/// fn audit(entry: String) { let _ = entry; }
/// #[airlock::task]
/// fn send_email(user_id: u64) { let _ = user_id; }
///
/// let scope = airlock::Scope::new().policy(AuditOnly).start();
/// scope.in_scope(|| -> airlock::Result<()> {
///     audit::enqueue("signed up".into())?;
///     send_email::enqueue(7)?;
///     Ok(())
/// })?;
/// let report = scope.flush()?;
/// assert_eq!(report.dispatched(), ["audit.record"]);
/// assert_eq!(report.dropped(), ["send_email"]);
/// # Ok::<(), airlock::Error>(())
/// ```
pub trait Policy: fmt::Debug + Send + Sync + 'static {
    /// Called as each intent is enqueued, before it is buffered. Return `Err` to
    /// reject it: the caller's `enqueue` returns that error and nothing is buffered.
    ///
    /// # Errors
    /// A [`PolicyViolation`] to reject the intent; build it with [`violation`].
    fn on_enqueue(&self, intent: &Intent) -> Result<(), PolicyViolation> {
        let _ = intent;
        Ok(())
    }

    /// Called at flush for each buffered intent, in FIFO order. `false` drops it.
    /// It cannot reorder intents.
    fn allows(&self, intent: &Intent) -> bool {
        let _ = intent;
        true
    }

    /// A short name for reports and logs; defaults to the `Debug` output.
    fn name(&self) -> String {
        format!("{self:?}")
    }
}

/// Builds the [`PolicyViolation`] a policy returns from `on_enqueue`.
pub fn violation(
    policy: &dyn Policy,
    intent: &Intent,
    reason: impl Into<String>,
) -> PolicyViolation {
    PolicyViolation {
        policy: policy.name(),
        task: intent.name(),
        origin: intent.origin().to_string(),
        reason: reason.into(),
    }
}

impl<P: Policy + ?Sized> Policy for Arc<P> {
    fn on_enqueue(&self, intent: &Intent) -> Result<(), PolicyViolation> {
        (**self).on_enqueue(intent)
    }
    fn allows(&self, intent: &Intent) -> bool {
        (**self).allows(intent)
    }
    fn name(&self) -> String {
        (**self).name()
    }
}

impl<P: Policy + ?Sized> Policy for Box<P> {
    fn on_enqueue(&self, intent: &Intent) -> Result<(), PolicyViolation> {
        (**self).on_enqueue(intent)
    }
    fn allows(&self, intent: &Intent) -> bool {
        (**self).allows(intent)
    }
    fn name(&self) -> String {
        (**self).name()
    }
}

/// Several policies applied in order: every one must accept and allow.
///
/// [`Scope::policy`](crate::Scope::policy) called twice builds one of these.
#[derive(Debug, Clone, Default)]
pub struct Policies(Vec<Arc<dyn Policy>>);

impl Policies {
    /// An empty set: allows everything.
    pub fn new() -> Self {
        Policies(Vec::new())
    }

    /// Adds a policy after the existing ones.
    pub fn with(mut self, policy: impl Policy) -> Self {
        self.0.push(Arc::new(policy));
        self
    }

    /// Adds an already shared policy.
    pub fn push(&mut self, policy: Arc<dyn Policy>) {
        self.0.push(policy);
    }

    /// The policies, in evaluation order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Policy>> {
        self.0.iter()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The policy at which `allows` first says no, if any.
    pub(crate) fn first_refusal(&self, intent: &Intent) -> Option<&Arc<dyn Policy>> {
        self.0.iter().find(|p| !p.allows(intent))
    }
}

impl Policy for Policies {
    fn on_enqueue(&self, intent: &Intent) -> Result<(), PolicyViolation> {
        self.0.iter().try_for_each(|p| p.on_enqueue(intent))
    }
    fn allows(&self, intent: &Intent) -> bool {
        self.first_refusal(intent).is_none()
    }
    fn name(&self) -> String {
        let names: Vec<String> = self.0.iter().map(|p| p.name()).collect();
        format!("[{}]", names.join(", "))
    }
}

/// A policy refused an intent at enqueue time.
#[derive(Debug, Clone, thiserror::Error)]
#[error("policy {policy} rejected `{task}` (enqueued at {origin}): {reason}")]
pub struct PolicyViolation {
    /// The name of the policy that refused.
    pub policy: String,
    /// The task that was refused.
    pub task: &'static str,
    /// Where the refused `enqueue` was called.
    pub origin: String,
    /// Why, in the policy's words.
    pub reason: String,
}
