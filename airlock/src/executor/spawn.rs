//! The tokio executor: each intent becomes a task on the runtime.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::Notify;

use crate::executor::in_process::run_intent_with;
use crate::executor::{BoxFuture, DispatchError, Executor};
use crate::intent::Intent;

/// Spawns each dispatched intent as its own task on a tokio runtime, so a
/// flush returns at once and the tasks run in the background (airlock-py's
/// thread-pool executor). Feature `tokio`.
///
/// Each task runs in its own isolated scope, like [`InProcess`](super::InProcess)
/// and queue workers, and what it enqueues is dispatched by this same
/// executor. Errors and panics are logged (target `airlock::executor`) and
/// counted. [`wait_idle`](Self::wait_idle) waits until every spawned task,
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
        let cascade: Arc<dyn Executor> = Arc::new(self.clone());
        for intent in intents {
            let shared = Arc::clone(&self.shared);
            let cascade = Arc::clone(&cascade);
            // Counted before spawning, so `wait_idle` right after a flush waits.
            shared.in_flight.fetch_add(1, Ordering::AcqRel);
            handle.spawn(async move {
                let task = intent.name();
                match run_intent_with(intent, cascade).await {
                    Ok(()) => shared.completed.fetch_add(1, Ordering::AcqRel),
                    Err(error) => {
                        tracing::error!(target: "airlock::executor", task, %error, "spawned task failed");
                        shared.failed.fetch_add(1, Ordering::AcqRel)
                    }
                };
                if shared.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
                    shared.idle.notify_waiters();
                }
            });
        }
        Ok(())
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
