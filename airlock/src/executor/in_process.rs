//! The default executor: runs tasks in this process, right after the flush.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::config;
use crate::error::BoxError;
use crate::executor::{DispatchError, Executor};
use crate::flush::panic_message;
use crate::intent::Intent;
use crate::scope::Scope;
use crate::task::{BoxFuture, Runner};

/// Runs each intent's task in this process, in FIFO order, when the scope
/// flushes: sync tasks inline; async tasks awaited when the scope is async.
///
/// * **No serialization:** the typed arguments move straight into the function.
/// * **Worker semantics:** each task runs inside its own outermost scope with
///   the configured defaults, exactly as a queue worker runs it, so intents a
///   task enqueues are dispatched when it succeeds and discarded when it fails,
///   and `BlockTasks` can stop a re-entrant cascade. A cascade deeper than
///   [`Config::max_cascade_depth`](crate::Config::max_cascade_depth) fails.
/// * **Failures:** a task that returns `Err` or panics fails the flush
///   (fail-fast): later intents are not attempted and are handed back in the
///   error.
/// * An async task flushed from a sync scope cannot be awaited there; it fails
///   with an error that says to flush from an async scope.
#[derive(Debug, Clone, Copy, Default)]
pub struct InProcess;

impl Executor for InProcess {
    fn dispatch(&self, intents: Vec<Intent>) -> Result<(), DispatchError> {
        let mut rest = intents.into_iter();
        let mut dispatched = 0;
        while let Some(intent) = rest.next() {
            if let Err(error) = run_sync(intent) {
                return Err(DispatchError::failed_at(dispatched, error, rest.collect()));
            }
            dispatched += 1;
        }
        Ok(())
    }

    fn dispatch_async(&self, intents: Vec<Intent>) -> BoxFuture<'_, Result<(), DispatchError>> {
        Box::pin(async move {
            let mut rest = intents.into_iter();
            let mut dispatched = 0;
            while let Some(intent) = rest.next() {
                if let Err(error) = run_async(intent).await {
                    return Err(DispatchError::failed_at(dispatched, error, rest.collect()));
                }
                dispatched += 1;
            }
            Ok(())
        })
    }
}

/// The scope a task runs in: outermost, named after the task, one level deeper.
fn task_scope(intent: &Intent) -> Result<Scope, BoxError> {
    let depth = intent.cascade_depth() + 1;
    let limit = config::current().max_cascade_depth;
    if depth > limit {
        return Err(format!(
            "task `{}` is {depth} levels deep in a cascade of tasks enqueueing tasks (limit {limit}); \
             a task probably re-enqueues itself. Block the re-entrant task with BlockTasks in the \
             task's scope, or raise Config::max_cascade_depth",
            intent.name()
        )
        .into());
    }
    Ok(Scope::new()
        .__isolated()
        .name(intent.name())
        .__cascade_depth(depth))
}

fn run_sync(intent: Intent) -> Result<(), BoxError> {
    let scope = task_scope(&intent)?;
    let (task, args) = intent.into_parts();
    match task.runner() {
        Runner::Sync(run) => std::panic::catch_unwind(AssertUnwindSafe(|| scope.run(|| run(args))))
            .unwrap_or_else(|panic| {
                Err(format!(
                    "task `{}` panicked: {}",
                    task.name(),
                    panic_message(&*panic)
                )
                .into())
            }),
        Runner::Async(_) => Err(format!(
            "task `{}` is async and cannot be awaited from a synchronous scope; flush from an \
             async scope (#[airlock::scoped] async fn, airlock::scope_async) or use an executor \
             that runs async tasks on a runtime",
            task.name()
        )
        .into()),
    }
}

async fn run_async(intent: Intent) -> Result<(), BoxError> {
    let scope = task_scope(&intent)?;
    let (task, args) = intent.into_parts();
    let name = task.name();
    let result = match task.runner() {
        Runner::Sync(run) => std::panic::catch_unwind(AssertUnwindSafe(|| scope.run(|| run(args))))
            .map_err(|p| panic_message(&*p)),
        Runner::Async(run) => {
            CatchUnwind {
                future: scope.run_async(run(args)),
            }
            .await
        }
    };
    result.unwrap_or_else(|message| Err(format!("task `{name}` panicked: {message}").into()))
}

pin_project! {
    /// Turns a panic while polling into an `Err` carrying the panic message.
    struct CatchUnwind<F> {
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self.project().future;
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic_message(&*panic))),
        }
    }
}
