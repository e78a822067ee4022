//! The default executor: runs tasks in this process, right after the flush.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::buffer;
use crate::config;
use crate::context::{self, FrameGuard, LazyScope};
use crate::error::BoxError;
use crate::executor::{DispatchError, Executor, InProcess, InProcessForbidden};
use crate::flush::panic_message;
use crate::intent::Intent;
use crate::scope::active::ActiveScope;
use crate::scope::core::ScopeCore;
use crate::scope::settings::Scope;

/// The scope each sync task of a dispatch loop runs in, created only if the
/// task needs one (it enqueues, opens a scope, asks for `current()`): most
/// tasks have no effects of their own, and then cost no scope. One frame
/// serves the tasks of a loop in turn until one of them creates its scope.
struct TaskFrame {
    slot: Rc<TaskSlot>,
    guard: Option<FrameGuard>,
}

/// The settings of the task scope a [`TaskFrame`] would create, and the
/// scope once created.
struct TaskSlot {
    name: Cell<&'static str>,
    cascade_depth: Cell<u32>,
    executor: Option<Arc<dyn Executor>>,
    created: RefCell<Option<Arc<ScopeCore>>>,
}

impl LazyScope for TaskSlot {
    fn create(&self) -> Arc<ScopeCore> {
        let settings = task_scope(
            self.name.get(),
            self.cascade_depth.get(),
            self.executor.clone(),
        );
        let core = ScopeCore::start(settings, None);
        *self.created.borrow_mut() = Some(Arc::clone(&core));
        core
    }
}

impl TaskFrame {
    /// A frame whose task scopes dispatch with `executor` (the configured
    /// one when `None`). Nothing is pushed until [`enter`](Self::enter).
    fn new(executor: Option<Arc<dyn Executor>>) -> Self {
        let slot = Rc::new(TaskSlot {
            name: Cell::new(""),
            cascade_depth: Cell::new(0),
            executor,
            created: RefCell::new(None),
        });
        TaskFrame { slot, guard: None }
    }

    /// Makes the frame current for the task `name`, `cascade_depth` levels deep.
    fn enter(&mut self, name: &'static str, cascade_depth: u32) {
        self.slot.name.set(name);
        self.slot.cascade_depth.set(cascade_depth);
        if self.guard.is_none() {
            self.guard = Some(context::push_lazy(
                Rc::clone(&self.slot) as Rc<dyn LazyScope>
            ));
        }
    }

    /// After a task: the scope it created, if any, with the frame popped so
    /// the scope ends outside it. Otherwise the frame stays for the next task.
    fn leave(&mut self) -> Option<Arc<ScopeCore>> {
        let created = self.slot.created.borrow_mut().take()?;
        self.guard = None;
        Some(created)
    }
}
use crate::task::{BoxFuture, Runner, TaskDef};

/// Refuses the whole flush, before anything runs, when an intent is due
/// later than now: running it at once would break its `delay`/`run_at`, and
/// dropping the schedule silently is what this refusal prevents.
fn refuse_scheduled(intents: Vec<Intent>) -> Result<Vec<Intent>, DispatchError> {
    if !intents.iter().any(Intent::is_scheduled) {
        return Ok(intents);
    }
    let now = std::time::SystemTime::now();
    let Some(scheduled) = intents
        .iter()
        .find(|intent| !matches!(intent.due_at(now), Ok(None)))
    else {
        return Ok(intents);
    };
    let message = format!(
        "InProcess runs tasks as the scope flushes, so it cannot run `{}` later \
         (it has a delay or run_at); nothing of this flush was run. Dispatch scheduled \
         intents with TokioExecutor or a queue executor, or drop the schedule",
        scheduled.name()
    );
    Err(DispatchError::stopped_at(0, message, intents))
}

/// Refuses the whole flush, before anything runs, when the configuration
/// forbids in-process dispatch.
fn refuse_if_forbidden(intents: Vec<Intent>) -> Result<Vec<Intent>, DispatchError> {
    if !config::with_current(|config| config.forbid_in_process) {
        return Ok(intents);
    }
    let task = intents.first().map_or("", Intent::name);
    Err(DispatchError::stopped_at(
        0,
        InProcessForbidden { task },
        intents,
    ))
}

impl Executor for InProcess {
    fn dispatch(&self, intents: Vec<Intent>) -> Result<(), DispatchError> {
        let mut intents = refuse_scheduled(refuse_if_forbidden(intents)?)?;
        let limit = cascade_limit();
        let mut frame = TaskFrame::new(None);
        let mut rest = intents.drain(..);
        let mut dispatched = 0;
        while let Some(intent) = rest.next() {
            if let Err(error) = run_sync(intent, limit, &mut frame) {
                return Err(DispatchError::failed_at(dispatched, error, rest.collect()));
            }
            dispatched += 1;
        }
        drop(rest);
        buffer::recycle(intents);
        Ok(())
    }

    fn dispatch_async(&self, intents: Vec<Intent>) -> BoxFuture<'_, Result<(), DispatchError>> {
        Box::pin(async move {
            let mut intents = refuse_scheduled(refuse_if_forbidden(intents)?)?;
            let limit = cascade_limit();
            let mut rest = intents.drain(..);
            let mut dispatched = 0;
            while let Some(intent) = rest.next() {
                if let Err(error) = run_async(intent, limit, None).await {
                    return Err(DispatchError::failed_at(dispatched, error, rest.collect()));
                }
                dispatched += 1;
            }
            drop(rest);
            buffer::recycle(intents);
            Ok(())
        })
    }
}

/// Runs one intent exactly as [`InProcess`] (and a queue worker) does: in its
/// own isolated scope, one cascade level deeper, with panics turned into
/// errors. Sync tasks run inline; async tasks are awaited.
///
/// # Errors
/// The task's own error, its panic message, or the cascade-limit error.
pub async fn run_intent(intent: Intent) -> Result<(), BoxError> {
    run_async(intent, cascade_limit(), None).await
}

/// [`run_intent`] for a sync task, on the calling thread: what a worker runs
/// on its blocking pool, so a task that blocks holds no async thread.
///
/// # Errors
/// As [`run_intent`]; an async task fails with the error that it needs an
/// async scope.
#[cfg(feature = "_queue")]
pub(crate) fn run_sync_intent(intent: Intent) -> Result<(), BoxError> {
    run_sync(intent, cascade_limit(), &mut TaskFrame::new(None))
}

/// [`run_intent`], with what the task enqueues dispatched by `executor`
/// instead of the configured one.
#[cfg(feature = "tokio")]
pub(crate) async fn run_intent_with(
    intent: Intent,
    executor: Arc<dyn Executor>,
) -> Result<(), BoxError> {
    run_async(intent, cascade_limit(), Some(executor)).await
}

/// How deep a cascade of tasks enqueueing tasks may go (the configuration's).
pub(crate) fn cascade_limit() -> u32 {
    config::with_current(|config| config.max_cascade_depth)
}

/// The cascade depth of the scope `intent`'s task runs in: one level deeper
/// than the intent, refused beyond `limit`.
///
/// A worker's intent carries the depth its envelope says, which is input
/// from the wire: `u32::MAX` must be refused, never overflow (a panic in a
/// debug build, a wrap to 0 that resets the guard in release).
#[inline]
pub(crate) fn task_depth(intent: &Intent, limit: u32) -> Result<u32, BoxError> {
    match intent.cascade_depth().checked_add(1) {
        Some(depth) if depth <= limit => Ok(depth),
        depth => Err(too_deep(intent.name(), depth, limit)),
    }
}

#[cold]
fn too_deep(task: &str, depth: Option<u32>, limit: u32) -> BoxError {
    let depth = match depth {
        Some(depth) => depth.to_string(),
        None => format!("more than {}", u32::MAX),
    };
    format!(
        "task `{task}` is {depth} levels deep in a cascade of tasks enqueueing tasks (limit {limit}); \
         a task probably re-enqueues itself. Block the re-entrant task with BlockTasks in the \
         task's scope, or raise Config::max_cascade_depth"
    )
    .into()
}

#[cold]
fn async_in_sync_scope(task: &TaskDef) -> BoxError {
    format!(
        "task `{}` is async and cannot be awaited from a synchronous scope; flush from an \
         async scope (#[airlock::scoped] async fn, airlock::scope_async) or use an executor \
         that runs async tasks on a runtime",
        task.name()
    )
    .into()
}

/// The scope a task runs in when it is awaited: outermost and isolated from
/// everything around the flush (as on a worker), named after the task.
fn task_scope(name: &'static str, depth: u32, executor: Option<Arc<dyn Executor>>) -> Scope {
    let scope = Scope::new().name(name).for_task(depth);
    match executor {
        Some(executor) => scope.shared_executor(executor),
        None => scope,
    }
}

#[cold]
fn panicked(task: &str, panic: &(dyn std::any::Any + Send)) -> BoxError {
    format!("task `{task}` panicked: {}", panic_message(panic)).into()
}

/// Runs a sync task in `frame`, which gives it its own scope (see
/// [`TaskFrame`]) only if it needs one.
#[inline]
fn run_sync(intent: Intent, limit: u32, frame: &mut TaskFrame) -> Result<(), BoxError> {
    let depth = task_depth(&intent, limit)?;
    let (task, args) = intent.into_parts();
    let Runner::Sync(run) = task.runner() else {
        return Err(async_in_sync_scope(task));
    };
    frame.enter(task.name(), depth);
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| run(args)));
    match frame.leave() {
        None => outcome.unwrap_or_else(|panic| Err(panicked(task.name(), &*panic))),
        Some(created) => end_task_scope(created, task, outcome),
    }
}

/// Ends the scope a sync task created, as the task ended.
#[cold]
fn end_task_scope(
    core: Arc<ScopeCore>,
    task: &TaskDef,
    outcome: std::thread::Result<Result<(), BoxError>>,
) -> Result<(), BoxError> {
    match outcome {
        Ok(result) => ActiveScope::from_core(core).finish_with(result),
        Err(panic) => {
            ActiveScope::from_core(core).finish_panicked();
            Err(panicked(task.name(), &*panic))
        }
    }
}

async fn run_async(
    intent: Intent,
    limit: u32,
    executor: Option<Arc<dyn Executor>>,
) -> Result<(), BoxError> {
    let (task, runner) = (intent.task(), intent.task().runner());
    match runner {
        Runner::Sync(_) => run_sync(intent, limit, &mut TaskFrame::new(executor)),
        Runner::Async(run) => {
            let depth = task_depth(&intent, limit)?;
            let (_, args) = intent.into_parts();
            CatchUnwind {
                future: task_scope(task.name(), depth, executor).run_async(run(args)),
            }
            .await
            .unwrap_or_else(|panic| Err(panicked(task.name(), &*panic)))
        }
    }
}

pin_project! {
    /// Turns a panic while polling into an `Err` carrying the panic payload.
    struct CatchUnwind<F> {
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self.project().future;
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}
