//! Enqueue: the front of the data path. An intent is checked by every policy in
//! force and appended to the current scope's buffer; nothing is dispatched.

use std::any::Any;
use std::panic::Location;

use crate::context::{self, Target};
use crate::error::Error;
use crate::intent::{Intent, IntentId};
use crate::policy::chain::{is_in_policy, PolicyLink};
use crate::task::TaskDef;

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
    if is_in_policy() {
        return Err(Error::PolicyEnqueue {
            task: intent.name(),
        });
    }
    let name = intent.name();
    let mut slot = Some(intent);
    let scope = match context::enqueue_target(&mut slot) {
        Target::Pushed(id) => return Ok(id),
        Target::Deferred(scope) => scope,
        Target::NoScope => {
            tracing::debug!(target: "airlock::enqueue", task = name, "enqueue outside a scope");
            return Err(Error::NoScope { task: name });
        }
        Target::Busy => return Err(Error::ScopeBusy { task: name }),
        Target::Closed(error) => return Err(error),
    };
    let intent = slot.expect("a deferred intent is handed back");
    if let Err(violation) = PolicyLink::check_enqueue(intent.chain.as_ref(), &intent) {
        tracing::debug!(target: "airlock::policy", %violation, "intent rejected at enqueue");
        return Err(violation.into());
    }
    let id = scope.push(intent)?;
    tracing::trace!(
        target: "airlock::enqueue",
        task = name,
        id = id.get(),
        scope = %scope.info,
        "intent enqueued"
    );
    Ok(id)
}

/// `enqueue(Intent::new::<T>(args))`, as generated `my_task::enqueue(..)`
/// calls it: in the common case the intent is built right in the scope's
/// buffer (see [`context::buffer_new`]); otherwise it takes the general path.
#[inline]
pub(crate) fn enqueue_new<A: Any + Send + Sync>(
    task: &'static TaskDef,
    args: A,
    origin: &'static Location<'static>,
) -> Result<IntentId, Error> {
    match context::buffer_new(task, args, origin) {
        Ok(id) => Ok(id),
        Err(args) => enqueue(Intent::from_erased(task, Box::new(args), None, origin)),
    }
}
