//! Local policy blocks: a policy attached to every intent enqueued inside a
//! block of code, whatever scope they land in.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::context;
use crate::policy::chain::{HeldPolicy, PolicyLink, PolicySource};
use crate::policy::Policy;
use crate::scope::core::Current;

fn local_frame(policy: &HeldPolicy) -> Current {
    let (scope, chain) = context::top()
        .map(|current| (current.scope.clone(), current.chain.clone()))
        .unwrap_or_default();
    Current {
        scope,
        chain: PolicyLink::extend(chain, std::slice::from_ref(policy), &PolicySource::Local),
    }
}

/// Runs `body` with `policy` attached to every intent enqueued inside it.
///
/// The policy's `on_enqueue` runs at enqueue (so `AssertNoEffects` or a
/// rejecting `BlockTasks` refuse right there, as they do on a scope) and its
/// `allows` at flush, before the scope's own policies.
///
/// ```
/// use airlock::DropAll;
/// # #[airlock::task] fn audit(entry: String) { let _ = entry; }
///
/// let captured = airlock::testing::capture(|| -> airlock::Result<()> {
///     audit::enqueue("kept".into())?;
///     airlock::with_policy(DropAll, || audit::enqueue("dropped at flush".into()))?;
///     Ok(())
/// });
/// let passes: Vec<bool> = captured.intents.iter().map(|i| captured.passes_local_policies(i)).collect();
/// assert_eq!(passes, [true, false]);
/// ```
pub fn with_policy<R>(policy: impl Policy, body: impl FnOnce() -> R) -> R {
    let _frame = context::push(local_frame(&HeldPolicy::new(policy)));
    body()
}

/// The async form of [`with_policy`]: the policy applies on every poll of `body`.
pub fn with_policy_async<F: Future>(policy: impl Policy, body: F) -> WithPolicy<F> {
    WithPolicy {
        body,
        policy: HeldPolicy::new(policy),
        frame: None,
    }
}

pin_project! {
    /// A future with a local policy; see [`with_policy_async`].
    #[must_use = "futures do nothing unless polled"]
    pub struct WithPolicy<F> {
        #[pin]
        body: F,
        policy: HeldPolicy,
        // Built on first poll, under the frames current there, then reused.
        frame: Option<Current>,
    }
}

impl<F: Future> Future for WithPolicy<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let frame = this
            .frame
            .get_or_insert_with(|| local_frame(this.policy))
            .clone();
        let _entered = context::push(frame);
        this.body.poll(cx)
    }
}

impl<F> fmt::Debug for WithPolicy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithPolicy")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}
