//! Enqueue: the front of the data path. An intent is checked by every policy in
//! force and appended to the current scope's buffer; nothing is dispatched.

use std::any::Any;
use std::panic::Location;
use std::time::SystemTime;

use crate::context;
use crate::error::Error;
use crate::intent::{Intent, IntentBuilder, IntentId};
use crate::policy::chain::{is_in_policy, PolicyLink};
use std::sync::Arc;

use crate::scope::core::ScopeCore;
use crate::task::{Task, TaskDef};

/// Enqueues a prebuilt intent into the current scope.
///
/// Generated `my_task::enqueue(..)` calls this; use it directly for intents
/// built with [`Intent::new`] or decoded from elsewhere.
///
/// # Errors
/// * [`Error::NoScope`]: no scope is current (never a silent dispatch);
/// * [`Error::ScopeClosed`]: the current scope has ended;
/// * [`Error::ScopeFull`]: the current scope holds as many intents as
///   [`Config::max_intents_per_scope`](crate::Config::max_intents_per_scope) allows;
/// * [`Error::PolicyViolation`]: a policy's `on_enqueue` refused it (it is not buffered);
/// * [`Error::PolicyEnqueue`]: called from inside a policy;
/// * [`Error::ScopeBusy`]: this thread is inspecting the scope's intents.
pub fn enqueue(intent: Intent) -> Result<IntentId, Error> {
    let name = intent.name();
    if is_in_policy() {
        return Err(Error::PolicyEnqueue { task: name });
    }
    let mut slot = Some(intent);
    let step = context::with_top(|current| {
        let scope = current.scope.as_ref()?;
        let mut intent = slot.take()?;
        intent.chain = current.chain.clone();
        intent.scope = Some(scope.info.id);
        intent.cascade_depth = scope.cascade_depth;
        // Policies and tracing subscribers are user code: they run with the
        // stack released.
        Some(
            if intent.chain.is_some() || tracing::level_enabled!(tracing::Level::TRACE) {
                Step::Check(Arc::clone(scope), intent)
            } else {
                push(scope, intent)
            },
        )
    })
    .flatten();
    let (scope, intent) = match step {
        None => {
            tracing::debug!(target: "airlock::enqueue", task = name, "enqueue outside a scope");
            return Err(Error::NoScope { task: name });
        }
        Some(Step::Pushed(id)) => return Ok(id),
        // The refused intent (its arguments' `Drop` is user code) drops
        // here, with nothing borrowed or locked.
        Some(Step::Refused(error, _intent)) => return Err(error),
        Some(Step::Check(scope, intent)) => (scope, intent),
    };
    if let Err(violation) = PolicyLink::check_enqueue(intent.chain.as_ref(), &intent) {
        tracing::debug!(target: "airlock::policy", %violation, "intent rejected at enqueue");
        return Err(violation.into());
    }
    let id = match push(&scope, intent) {
        Step::Pushed(id) => id,
        Step::Refused(error, _intent) => return Err(error),
        Step::Check(..) => unreachable!("push never defers"),
    };
    tracing::trace!(
        target: "airlock::enqueue",
        task = name,
        id = id.get(),
        scope = %scope.info,
        "intent enqueued"
    );
    Ok(id)
}

/// What became of an intent [`enqueue`] took to its scope.
enum Step {
    /// Buffered.
    Pushed(IntentId),
    /// Refused, for this reason; the intent is handed back to be dropped
    /// outside any borrow.
    Refused(Error, Intent),
    /// Policies must see it first.
    Check(Arc<ScopeCore>, Intent),
}

fn push(scope: &ScopeCore, intent: Intent) -> Step {
    match scope.push(intent) {
        Ok(id) => Step::Pushed(id),
        Err((refused, intent)) => Step::Refused(scope.refusal_error(refused, &intent), intent),
    }
}

/// `enqueue(Intent::new::<T>(args))`, as generated `my_task::enqueue(..)` calls it.
#[inline]
pub(crate) fn enqueue_new<A: Any + Send + Sync>(
    task: &'static TaskDef,
    args: A,
    origin: &'static Location<'static>,
) -> Result<IntentId, Error> {
    enqueue(Intent::from_erased(task, Box::new(args), None, origin))
}

impl<T: Task> IntentBuilder<T> {
    /// Enqueues the intent into the current scope, after checking that its
    /// schedule is one a queue can store.
    ///
    /// # Errors
    /// [`Error::Schedule`] for a `delay` or `run_at` after the year 9999;
    /// otherwise as [`enqueue`](crate::enqueue()): no scope, a closed scope,
    /// or a policy rejection.
    pub fn enqueue(self) -> Result<IntentId, Error> {
        let intent = self.build();
        intent.due_at(SystemTime::now())?;
        enqueue(intent)
    }
}
