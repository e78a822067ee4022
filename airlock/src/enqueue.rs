//! Enqueue: the front of the data path. An intent is checked by every policy in
//! force and appended to the current scope's buffer; nothing is dispatched.

use std::any::Any;
use std::panic::Location;
use std::time::SystemTime;

use crate::context;
use crate::error::Error;
use crate::intent::{Intent, IntentBuilder, IntentId};
use crate::policy::chain::{is_in_policy, PolicyLink};
use crate::scope::core::{Current, Refused};
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
    // The intent stays in this slot until it is buffered: a refused one is
    // dropped here (its arguments' `Drop` is user code), with nothing
    // borrowed or locked.
    let mut slot = Some(intent);
    // Written by the closure, not returned from it (see `Step`).
    let mut step = Step::NoScope;
    context::with_current(|current| {
        let Some(scope) = current.and_then(|current| current.scope.as_ref()) else {
            return;
        };
        // Policies and tracing subscribers are user code: they run with the
        // stack released.
        let chain = current.map_or(&None, |current| &current.chain);
        let checked = chain.as_ref().is_some_and(|chain| chain.checks_enqueue);
        if checked || tracing::level_enabled!(tracing::Level::TRACE) {
            step = Step::Check;
            return;
        }
        if let Some(intent) = slot.as_mut() {
            intent.scope = Some(scope.info.id);
            intent.cascade_depth = scope.cascade_depth;
        }
        step = scope.push(&mut slot, chain).into();
    });
    match step {
        Step::Pushed(id) => return Ok(id),
        Step::NoScope => return Err(no_scope(name)),
        Step::Refused(refused) => return Err(refusal(refused, name)),
        Step::Check => {}
    }
    // The general path: what is current, held while policies run.
    let current = context::top();
    let Some(Current {
        scope: Some(scope),
        chain,
    }) = current.as_deref()
    else {
        return Err(no_scope(name));
    };
    let intent = slot.as_mut().expect("still in the slot");
    intent.scope = Some(scope.info.id);
    intent.cascade_depth = scope.cascade_depth;
    if let Err(violation) = PolicyLink::check_enqueue(chain.as_ref(), intent) {
        tracing::debug!(target: "airlock::policy", %violation, "intent rejected at enqueue");
        return Err(violation.into());
    }
    let id = scope
        .push(&mut slot, chain)
        .map_err(|refused| scope.refusal_error(refused, name))?;
    tracing::trace!(
        target: "airlock::enqueue",
        task = name,
        id = id.get(),
        scope = %scope.info,
        "intent enqueued"
    );
    Ok(id)
}

/// What an enqueue did with the current scope, with the context borrowed.
/// The closure writes it into the caller's variable rather than returning
/// it: returned through the context's closure, it went through memory and
/// was copied with loads wider than the stores that made it, stalling the
/// CPU on every enqueue (about 15 ns of `in_process_table`'s "enqueue +
/// flush, in-process, N = 1000" row; 30 ns more when it carried an `Error`).
enum Step {
    /// Buffered.
    Pushed(IntentId),
    /// Refused by the current scope, for this reason.
    Refused(Refused),
    /// Nothing is current.
    NoScope,
    /// Policies must see the intent first (or a trace event be emitted):
    /// that is user code, run with the context released.
    Check,
}

impl From<Result<IntentId, Refused>> for Step {
    fn from(pushed: Result<IntentId, Refused>) -> Self {
        match pushed {
            Ok(id) => Step::Pushed(id),
            Err(refused) => Step::Refused(refused),
        }
    }
}

#[cold]
fn no_scope(task: &'static str) -> Error {
    tracing::debug!(target: "airlock::enqueue", task, "enqueue outside a scope");
    Error::NoScope { task }
}

/// The error for an intent of `task` the current scope refused.
#[cold]
fn refusal(refused: Refused, task: &'static str) -> Error {
    match context::top().as_deref() {
        Some(Current {
            scope: Some(scope), ..
        }) => scope.refusal_error(refused, task),
        _ => no_scope(task),
    }
}

/// `enqueue(Intent::new::<T>(args))`, as generated `my_task::enqueue(..)`
/// calls it.
///
/// When no policy in force checks intents at enqueue and trace logging is
/// off (no user code to run before the intent is buffered), the intent is
/// built right in the scope's buffer. Built elsewhere and moved there, it was copied with loads wider
/// than the stores that had just written it, stalling the CPU on every
/// enqueue (`in_process_table`'s "enqueue + flush, in-process, N = 1000"
/// row). Otherwise it takes the general path.
#[inline]
pub(crate) fn enqueue_new<A: Any + Send + Sync>(
    task: &'static TaskDef,
    args: A,
    origin: &'static Location<'static>,
) -> Result<IntentId, Error> {
    if is_in_policy() || tracing::level_enabled!(tracing::Level::TRACE) {
        return enqueue(Intent::from_erased(task, Box::new(args), None, origin));
    }
    let mut args = Some(args);
    // Written by the closure rather than returned from it: a result carried
    // back through the context's closure went through memory and was read
    // with loads wider than its stores, a stall on every enqueue.
    let mut pushed: Option<Result<IntentId, Refused>> = None;
    context::with_current(|current| {
        let Some(Current {
            scope: Some(scope),
            chain,
        }) = current
        else {
            return;
        };
        if chain.as_ref().is_some_and(|chain| chain.checks_enqueue) {
            return;
        }
        let (id, depth) = (scope.info.id, scope.cascade_depth);
        let make = || {
            let args = Box::new(args.take().expect("built once"));
            Intent::enqueued(task, args, origin, id, depth)
        };
        pushed = Some(scope.push_with(make, chain));
    });
    match pushed {
        Some(Ok(id)) => Ok(id),
        // The arguments, not taken, drop here, with nothing borrowed or locked.
        Some(Err(refused)) => Err(refusal(refused, task.name())),
        // No scope (the general path says so), or policies to ask.
        None => {
            let args = args.take().expect("not built");
            enqueue(Intent::from_erased(task, Box::new(args), None, origin))
        }
    }
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
