//! The settings a scope starts with: [`Scope`], a builder.

use std::borrow::Cow;
use std::sync::Arc;

use crate::executor::Executor;
use crate::policy::chain::HeldPolicy;
use crate::policy::Policy;
use crate::scope::behavior::{Behavior, ScopeBehavior};
use crate::scope::info::Durability;

/// How a new scope relates to the scopes and `with_policy` blocks current
/// where it starts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nesting {
    /// The current scope is its parent: it hands its intents up, under every
    /// policy around it.
    #[default]
    Nested,
    /// No parent scope; the `with_policy` blocks around it still apply.
    Detached,
    /// No parent, dispatching its own intents, but under every policy of the
    /// scopes and blocks around it, whose settings it inherits: a
    /// transaction scope.
    #[cfg_attr(not(feature = "sqlx"), allow(dead_code))]
    Boundary,
    /// Nothing current applies, scopes and blocks alike: a task's scope,
    /// as on a queue worker.
    Isolated,
}

/// Configures a scope before running it. Anything not set comes from the
/// global [`configuration`](crate::configuration); anything set here wins.
///
/// ```
/// use airlock::{DropAll, Scope};
/// # #[airlock::task] fn send_email(user_id: u64) { let _ = user_id; }
///
/// let result: airlock::Result<()> = Scope::new()
///     .name("backfill")
///     .policy(DropAll)
///     .run(|| {
///         send_email::enqueue(1)?; // buffered, then dropped: a dry run
///         Ok(())
///     });
/// assert!(result.is_ok());
/// ```
#[derive(Debug, Default, Clone)]
#[must_use = "a Scope does nothing until `run`, `run_async` or `start` is called"]
pub struct Scope {
    pub(crate) name: Option<Cow<'static, str>>,
    pub(crate) policies: Vec<HeldPolicy>,
    pub(crate) executor: Option<Arc<dyn Executor>>,
    pub(crate) behavior: Option<Behavior>,
    pub(crate) nesting: Nesting,
    pub(crate) cascade_depth: Option<u32>,
    pub(crate) durability: Option<Durability>,
}

impl Scope {
    /// A scope with every setting taken from the global configuration.
    pub fn new() -> Self {
        Scope::default()
    }

    /// Names the scope in reports, errors and logs.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds a policy. Called more than once, the policies apply in order.
    /// Replaces the configured default policy for this scope.
    pub fn policy(mut self, policy: impl Policy) -> Self {
        self.policies.push(HeldPolicy::new(policy));
        self
    }

    /// Adds an already shared policy.
    pub fn shared_policy(mut self, policy: Arc<dyn Policy>) -> Self {
        self.policies.push(HeldPolicy::shared(policy));
        self
    }

    /// Sets the executor that dispatches this scope's intents when it is the
    /// outermost scope (a nested scope hands its intents to its parent).
    pub fn executor(mut self, executor: impl Executor) -> Self {
        self.executor = Some(Arc::new(executor));
        self
    }

    /// Sets an already shared executor.
    pub fn shared_executor(mut self, executor: Arc<dyn Executor>) -> Self {
        self.executor = Some(executor);
        self
    }

    /// Sets the lifecycle hooks (when to flush, what descendants may dispatch).
    pub fn behavior(mut self, behavior: impl ScopeBehavior) -> Self {
        self.behavior = Some(Behavior::new(behavior));
        self
    }

    /// Starts this scope as an outermost scope even when another scope is
    /// current: it dispatches its own intents instead of handing them upward.
    /// The policies of the scopes around it do not apply; the
    /// [`with_policy`](crate::with_policy) blocks around it still do, so a
    /// library cannot escape a caller's `AssertNoEffects` block this way.
    pub fn detached(mut self) -> Self {
        self.nesting = Nesting::Detached;
        self
    }

    /// The scope a task runs in, `depth` task runs deep: it ignores
    /// everything current on this thread, scopes and `with_policy` blocks
    /// alike, as a queue worker would.
    pub(crate) fn for_task(mut self, depth: u32) -> Self {
        self.nesting = Nesting::Isolated;
        self.cascade_depth = Some(depth);
        self
    }
}
