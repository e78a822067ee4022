//! An intent: "this task should run with these arguments", not yet dispatched.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::scope::ScopeId;
use crate::task::{ArgsError, ErasedArgs, Task, TaskDef};

/// A process-unique identifier of an intent, given when the intent is
/// built and never changed: the id `enqueue` returns is the one the intent is
/// buffered, reported and dispatched under. Ids increase in the order intents
/// are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IntentId(u64);

/// The process's one clock of intent events: ids are drawn from it, and so
/// is the time a buffer notes for an intent it takes (see `buffer.rs`), so
/// the two compare.
#[inline]
pub(crate) fn tick() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl IntentId {
    /// The next id of the process.
    #[inline]
    fn next() -> Self {
        IntentId(tick())
    }

    /// The numeric value.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for IntentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// How an executor should dispatch an intent.
///
/// Queue executors honour every field. [`TokioExecutor`](crate::executor::TokioExecutor)
/// honours `delay` and `run_at` (the spawned task sleeps until then);
/// [`InProcess`](crate::InProcess) runs tasks as the scope flushes, so it
/// refuses a flush holding an intent due later rather than run it early. The
/// queue, priority and attempt count are hints for queues: in process a task
/// runs once, in FIFO order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DispatchOptions {
    /// Run no earlier than this long after dispatch.
    pub delay: Option<Duration>,
    /// Run no earlier than this instant.
    pub run_at: Option<SystemTime>,
    /// The queue to push to; executors fall back to their default queue.
    pub queue: Option<Cow<'static, str>>,
    /// Higher runs earlier where the executor supports priorities.
    pub priority: Option<i32>,
    /// How many times a queue may attempt the task before giving up.
    pub max_attempts: Option<u32>,
}

/// The latest instant a schedule may name, in seconds since the Unix epoch:
/// the last second of the year 9999. Every queue backend stores it, and every
/// platform's clock represents it.
pub const LATEST_SCHEDULE_SECS: u64 = 253_402_300_799;

impl DispatchOptions {
    /// The earliest instant the intent may run when dispatched at `now`: the
    /// later of `run_at` and `now + delay`; `None` when that is not after
    /// `now` (a `run_at` in the past, even before 1970, means at once).
    fn due_at(&self, now: SystemTime) -> Result<Option<SystemTime>, String> {
        let latest = SystemTime::UNIX_EPOCH + Duration::from_secs(LATEST_SCHEDULE_SECS);
        let after_delay = match self.delay {
            Some(delay) => Some(
                now.checked_add(delay)
                    .filter(|at| *at <= latest)
                    .ok_or_else(|| {
                        format!(
                            "a delay of {delay:?} ends after the year 9999, the latest time \
                             a queue can schedule"
                        )
                    })?,
            ),
            None => None,
        };
        if let Some(at) = self.run_at {
            if at > latest {
                return Err(format!(
                    "run_at {:?} s after the Unix epoch is after the year 9999, the latest \
                     time a queue can schedule",
                    at.duration_since(SystemTime::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or_default()
                ));
            }
        }
        Ok(after_delay.max(self.run_at).filter(|at| *at > now))
    }
}

/// A buffered side effect: a task, its typed arguments, how to dispatch it,
/// and where it was enqueued.
///
/// `Display` reads like the call: `send_confirmation_email(42)`.
pub struct Intent {
    id: IntentId,
    task: &'static TaskDef,
    args: ErasedArgs,
    options: Option<Box<DispatchOptions>>,
    origin: &'static Location<'static>,
    pub(crate) scope: Option<ScopeId>,
    pub(crate) cascade_depth: u32,
}

impl Intent {
    /// Builds an intent for task `T` from its generated arguments struct.
    ///
    /// Most code uses the generated `my_task::enqueue(..)` / `my_task::intent(..)`
    /// instead, which take the arguments positionally.
    #[track_caller]
    pub fn new<T: Task>(args: T::Args) -> Self {
        Self::from_erased(T::def(), Box::new(args), None, Location::caller())
    }

    #[inline]
    pub(crate) fn from_erased(
        task: &'static TaskDef,
        args: ErasedArgs,
        options: Option<Box<DispatchOptions>>,
        origin: &'static Location<'static>,
    ) -> Self {
        Intent {
            id: IntentId::next(),
            task,
            args,
            options,
            origin,
            scope: None,
            cascade_depth: 0,
        }
    }

    /// An intent enqueued in scope `scope`, `cascade_depth` task runs deep,
    /// built in one expression so it can be written straight into the
    /// buffer (see `enqueue::enqueue_new`).
    #[inline]
    pub(crate) fn enqueued(
        task: &'static TaskDef,
        args: ErasedArgs,
        origin: &'static Location<'static>,
        scope: ScopeId,
        cascade_depth: u32,
    ) -> Self {
        Intent {
            id: IntentId::next(),
            task,
            args,
            options: None,
            origin,
            scope: Some(scope),
            cascade_depth,
        }
    }

    /// The intent's process-unique id.
    pub fn id(&self) -> IntentId {
        self.id
    }

    /// The task's registered name.
    pub fn name(&self) -> &'static str {
        self.task.name()
    }

    /// The task's registry entry.
    pub fn task(&self) -> &'static TaskDef {
        self.task
    }

    /// Whether this is an intent for task `T`.
    pub fn is<T: Task>(&self) -> bool {
        std::ptr::eq(self.task, T::def()) || self.task == T::def()
    }

    /// The typed arguments, if this is an intent for task `T`.
    ///
    /// ```
    /// # #[airlock::task] fn send_email(user_id: u64) { let _ = user_id; }
    /// let captured = airlock::testing::capture(|| send_email::enqueue(7).map(drop));
    /// let args = captured.intents[0].args::<send_email>().unwrap();
    /// assert_eq!(args.user_id, 7);
    /// ```
    pub fn args<T: Task>(&self) -> Option<&T::Args> {
        self.args.downcast_ref::<T::Args>()
    }

    /// The type-erased arguments (see `executor::IntentParts`).
    pub(crate) fn erased_args(&self) -> &(dyn Any + Send + Sync) {
        &*self.args
    }

    /// The arguments as a JSON object keyed by parameter name, as they would
    /// travel to a queue. This is the only place arguments are serialized.
    ///
    /// # Errors
    /// [`ArgsError::Encode`] if an argument's `Serialize` impl fails.
    pub fn args_json(&self) -> Result<serde_json::Value, ArgsError> {
        self.task.encode_args(&*self.args)
    }

    /// How the intent asks to be dispatched.
    pub fn options(&self) -> &DispatchOptions {
        static DEFAULT: DispatchOptions = DispatchOptions {
            delay: None,
            run_at: None,
            queue: None,
            priority: None,
            max_attempts: None,
        };
        self.options.as_deref().unwrap_or(&DEFAULT)
    }

    /// The earliest instant this intent may run when dispatched at `now`
    /// (the later of its `run_at` and `now + delay`), or `None` when it may
    /// run at once. What an executor that honours schedules waits for.
    ///
    /// # Errors
    /// [`ScheduleError`] when the schedule lies after the year 9999
    /// ([`LATEST_SCHEDULE_SECS`]), which no queue stores.
    pub fn due_at(&self, now: SystemTime) -> Result<Option<SystemTime>, ScheduleError> {
        match &self.options {
            None => Ok(None),
            Some(options) => options.due_at(now).map_err(|reason| ScheduleError {
                task: self.name(),
                reason,
            }),
        }
    }

    /// Whether the intent has a `delay` or `run_at` at all: the cheap test
    /// before [`due_at`](Self::due_at), which executors run per intent
    /// (`in_process_table`'s in-process N = 1,000 row took 38 → 58 ns per
    /// intent with `due_at` alone).
    #[inline]
    pub(crate) fn is_scheduled(&self) -> bool {
        self.options
            .as_ref()
            .is_some_and(|options| options.delay.is_some() || options.run_at.is_some())
    }

    pub(crate) fn set_options(&mut self, options: DispatchOptions) {
        self.options = (options != DispatchOptions::default()).then(|| Box::new(options));
    }

    /// Where `enqueue` was called (recorded with `#[track_caller]`).
    pub fn origin(&self) -> &'static Location<'static> {
        self.origin
    }

    /// How many task executions led to this intent: 0 when enqueued by ordinary
    /// code, 1 when enqueued by a task, and so on.
    pub fn cascade_depth(&self) -> u32 {
        self.cascade_depth
    }

    /// Splits the intent into its task and erased arguments (see
    /// `executor::IntentParts`).
    pub(crate) fn into_parts(self) -> (&'static TaskDef, ErasedArgs) {
        (self.task, self.args)
    }
}

impl fmt::Display for Intent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.task.name())?;
        f.write_str("(")?;
        self.task.fmt_args(&*self.args, f)?;
        f.write_str(")")
    }
}

impl fmt::Debug for Intent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self} {} at {}", self.id, self.origin)?;
        if let Some(options) = &self.options {
            write!(f, " {options:?}")?;
        }
        Ok(())
    }
}

/// Builder for an intent with dispatch options; `my_task::intent(..)` returns one.
///
/// ```
/// # use std::time::Duration;
/// # #[airlock::task] fn notify_warehouse(order_id: u64) { let _ = order_id; }
/// # airlock::testing::capture(|| -> airlock::Result<()> {
/// notify_warehouse::intent(42)
///     .delay(Duration::from_secs(60))
///     .queue("warehouse")
///     .enqueue()?;
/// # Ok(()) });
/// ```
#[must_use = "an intent does nothing until `.enqueue()` is called"]
pub struct IntentBuilder<T: Task> {
    args: T::Args,
    options: DispatchOptions,
    origin: &'static Location<'static>,
    _task: PhantomData<fn() -> T>,
}

impl<T: Task> IntentBuilder<T> {
    /// Starts a builder; used by the generated `intent` function.
    #[track_caller]
    pub fn new(args: T::Args) -> Self {
        IntentBuilder {
            args,
            options: DispatchOptions::default(),
            origin: Location::caller(),
            _task: PhantomData,
        }
    }

    /// Run no earlier than `delay` after dispatch.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.options.delay = Some(delay);
        self
    }

    /// Run no earlier than `at`.
    pub fn run_at(mut self, at: SystemTime) -> Self {
        self.options.run_at = Some(at);
        self
    }

    /// Push to this queue instead of the executor's default.
    pub fn queue(mut self, queue: impl Into<Cow<'static, str>>) -> Self {
        self.options.queue = Some(queue.into());
        self
    }

    /// Priority hint: higher runs earlier where the executor supports it.
    pub fn priority(mut self, priority: i32) -> Self {
        self.options.priority = Some(priority);
        self
    }

    /// How many attempts a queue may make (at least 1: a queue given 0
    /// runs the job once).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.options.max_attempts = Some(attempts);
        self
    }

    /// Builds the intent without enqueueing it.
    pub fn build(self) -> Intent {
        let options = (self.options != DispatchOptions::default()).then(|| Box::new(self.options));
        Intent::from_erased(T::def(), Box::new(self.args), options, self.origin)
    }
}

impl<T: Task> fmt::Debug for IntentBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntentBuilder")
            .field("task", &T::def().name())
            .field("options", &self.options)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// An intent's `delay` or `run_at` lies beyond what a queue can schedule
/// (after the year 9999), or an executor cannot honour it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot schedule `{task}`: {reason}")]
pub struct ScheduleError {
    /// The task whose schedule was refused.
    pub task: &'static str,
    /// What is wrong with it, and what to do.
    pub reason: String,
}
