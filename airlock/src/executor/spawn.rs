//! The tokio executor: each intent becomes a task on the runtime.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::runtime::Handle;
use tokio::sync::Notify;

use crate::executor::in_process::run_intent_with;
use crate::executor::{BoxFuture, DispatchError, Executor};
use crate::intent::Intent;

/// Spawns each dispatched intent as its own task on a tokio runtime, so a
/// flush returns at once and the tasks run in the background. Feature
/// `tokio`.
///
/// Each task runs in its own isolated scope, like [`InProcess`](super::InProcess)
/// and queue workers, and what it enqueues is dispatched by this same
/// executor. An intent with a `delay` or `run_at` is spawned at once and
/// sleeps until it is due (counted in [`in_flight`](Self::in_flight)
/// meanwhile; a runtime shut down before then drops it unrun). Errors and
/// panics are logged (target `airlock::executor`) and counted. [`wait_idle`](Self::wait_idle) waits until every spawned task,
/// cascades included, has finished: what tests and graceful shutdowns need.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> airlock::Result<()> {
/// use airlock::executor::TokioExecutor;
///
/// #[airlock::task]
/// async fn resize_image(id: u64) {
///     println!("resizing {id}");
/// }
///
/// let executor = TokioExecutor::new();
/// airlock::Scope::new()
///     .executor(executor.clone())
///     .run_async(async { resize_image::enqueue(7).map(drop) })
///     .await?; // returns once the task is spawned
/// executor.wait_idle().await;
/// assert_eq!(executor.completed(), 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct TokioExecutor {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    handle: Option<Handle>,
    in_flight: AtomicUsize,
    completed: AtomicU64,
    failed: AtomicU64,
    idle: Notify,
}

impl fmt::Debug for TokioExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioExecutor")
            .field("in_flight", &self.in_flight())
            .field("completed", &self.completed())
            .field("failed", &self.failed())
            .finish_non_exhaustive()
    }
}

impl TokioExecutor {
    /// Spawns on the runtime current where each flush dispatches.
    pub fn new() -> Self {
        TokioExecutor::default()
    }

    /// Spawns on `handle`'s runtime, wherever the flush happens (even from a
    /// thread outside any runtime).
    pub fn on(handle: Handle) -> Self {
        TokioExecutor {
            shared: Arc::new(Shared {
                handle: Some(handle),
                ..Shared::default()
            }),
        }
    }

    /// Tasks spawned and not finished yet.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Acquire)
    }

    /// Tasks that finished with `Ok`.
    pub fn completed(&self) -> u64 {
        self.shared.completed.load(Ordering::Acquire)
    }

    /// Tasks that returned an error or panicked.
    pub fn failed(&self) -> u64 {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// Waits until no spawned task is running, including tasks that running
    /// tasks enqueued.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.shared.idle.notified();
            tokio::pin!(notified);
            // Register before checking, so a finish in between is not missed.
            notified.as_mut().enable();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }

    fn spawn_all(&self, intents: Vec<Intent>) -> Result<(), DispatchError> {
        let handle = match self
            .shared
            .handle
            .clone()
            .or_else(|| Handle::try_current().ok())
        {
            Some(handle) => handle,
            None => {
                return Err(DispatchError::stopped_at(
                    0,
                    "TokioExecutor found no tokio runtime: flush inside one, or build the \
                     executor with TokioExecutor::on(handle)",
                    intents,
                ))
            }
        };
        // Every schedule is checked before anything is spawned, so a refused
        // one hands the whole flush back.
        let now = SystemTime::now();
        let due: Result<Vec<Option<SystemTime>>, _> = intents
            .iter()
            .map(|intent| match intent.is_scheduled() {
                true => intent.due_at(now),
                false => Ok(None),
            })
            .collect();
        let due = match due {
            Ok(due) => due,
            Err(error) => return Err(DispatchError::stopped_at(0, error, intents)),
        };
        let cascade: Arc<dyn Executor> = Arc::new(self.clone());
        let mut intents = intents.into_iter();
        let mut due = due.into_iter();
        let mut spawned = 0;
        while let (Some(intent), Some(due)) = (intents.next(), due.next()) {
            // The task takes its intent on its first poll. A runtime that has
            // shut down drops a new task unpolled, at once: the intent is then
            // still in the slot, and comes back.
            // The timer is armed here, on the runtime: one built without
            // timers panics, and that must refuse the flush, not lose the
            // intent inside a task.
            let sleep = match due.map(|at| arm_timer(&handle, at)).transpose() {
                Ok(sleep) => sleep,
                Err(message) => {
                    return Err(DispatchError::stopped_at(
                        spawned,
                        message,
                        std::iter::once(intent).chain(intents).collect(),
                    ))
                }
            };
            let slot = Arc::new(std::sync::Mutex::new(Some(intent)));
            let taken = Arc::clone(&slot);
            let cascade = Arc::clone(&cascade);
            // Counted before spawning, so `wait_idle` right after a flush
            // waits; uncounted when the task ends or is dropped unrun.
            let running = Running::start(Arc::clone(&self.shared));
            let join = handle.spawn(async move {
                let running = running;
                let intent = taken.lock().unwrap_or_else(|p| p.into_inner()).take();
                let Some(intent) = intent else { return };
                if let Some(sleep) = sleep {
                    sleep.await;
                }
                let task = intent.name();
                match run_intent_with(intent, cascade).await {
                    Ok(()) => running.shared.completed.fetch_add(1, Ordering::AcqRel),
                    Err(error) => {
                        tracing::error!(target: "airlock::executor", task, %error, "spawned task failed");
                        running.shared.failed.fetch_add(1, Ordering::AcqRel)
                    }
                };
            });
            let refused = if join.is_finished() {
                slot.lock().unwrap_or_else(|p| p.into_inner()).take()
            } else {
                None
            };
            if let Some(intent) = refused {
                return Err(DispatchError::stopped_at(
                    spawned,
                    "TokioExecutor's runtime has shut down and runs no new task; build the \
                     executor on a runtime that outlives the scopes that flush to it",
                    std::iter::once(intent).chain(intents).collect(),
                ));
            }
            spawned += 1;
        }
        Ok(())
    }
}

/// A timer on `handle`'s runtime that fires at `at`, or why there is none
/// (the runtime was built without `enable_time`).
fn arm_timer(
    handle: &Handle,
    at: SystemTime,
) -> Result<std::pin::Pin<Box<tokio::time::Sleep>>, String> {
    let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
    let _runtime = handle.enter();
    std::panic::catch_unwind(|| Box::pin(tokio::time::sleep(wait))).map_err(|_| {
        "TokioExecutor cannot delay an intent: its runtime has no timers. Build the runtime \
         with `enable_time()` (or `enable_all()`)"
            .to_owned()
    })
}

/// One spawned task, counted in `in_flight` from its spawn until it ends or
/// is dropped without running.
struct Running {
    shared: Arc<Shared>,
}

impl Running {
    fn start(shared: Arc<Shared>) -> Self {
        shared.in_flight.fetch_add(1, Ordering::AcqRel);
        Running { shared }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.shared.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.idle.notify_waiters();
        }
    }
}

impl Executor for TokioExecutor {
    /// Spawns every intent and returns at once (works from sync scopes too).
    fn dispatch(&self, intents: Vec<Intent>) -> Result<(), DispatchError> {
        self.spawn_all(intents)
    }

    fn dispatch_async(&self, intents: Vec<Intent>) -> BoxFuture<'_, Result<(), DispatchError>> {
        let result = self.spawn_all(intents);
        Box::pin(std::future::ready(result))
    }
}
