//! What a task is: a named, registered function whose arguments can be buffered.
//!
//! `#[airlock::task]` turns a function into a task. Next to the function it
//! generates a handle type of the same name (a braced struct lives in the type
//! namespace, so it does not clash with the function) that implements [`Task`]
//! and carries `enqueue`, `intent` and `TASK`.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::clipped::Clipped;

/// A boxed error as tasks and executors report it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A boxed, sendable future, as async tasks and executors return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Type-erased task arguments, as an [`Intent`](crate::Intent) holds them.
pub type ErasedArgs = Box<dyn Any + Send + Sync>;

/// A task: implemented by the handle type `#[airlock::task]` generates.
///
/// Use it to name a task in generic code, e.g.
/// [`Intent::args`](crate::Intent::args)`::<send_email>()`.
pub trait Task: 'static {
    /// The generated struct holding the task's arguments by parameter name.
    type Args: Send + Sync + 'static;

    /// The task's registry entry.
    fn def() -> &'static TaskDef;
}

/// Whether a task body is a plain `fn` or an `async fn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// A plain function: the in-process executor calls it inline.
    Sync,
    /// An `async fn`: the in-process executor awaits it from an async scope.
    Async,
}

/// How to run a task given its erased arguments.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub enum Runner {
    Sync(fn(ErasedArgs) -> Result<(), BoxError>),
    Async(fn(ErasedArgs) -> BoxFuture<'static, Result<(), BoxError>>),
}

/// The type-erased operations on a task's arguments, generated per task.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct ArgsVTable {
    pub encode: fn(&(dyn Any + Send + Sync)) -> Result<serde_json::Value, serde_json::Error>,
    pub decode: fn(serde_json::Value) -> Result<ErasedArgs, serde_json::Error>,
    pub fmt: fn(&(dyn Any + Send + Sync), &mut fmt::Formatter<'_>) -> fmt::Result,
}

/// A registered task: its stable name, where it is defined, and how to run it.
///
/// One `static` per `#[airlock::task]`; reach it with `my_task::TASK` or
/// [`Registry::get`](crate::Registry::get).
///
/// Built only by generated code, through `__private::task_def`.
pub struct TaskDef {
    pub(crate) name: &'static str,
    pub(crate) fn_path: &'static str,
    pub(crate) file: &'static str,
    pub(crate) line: u32,
    pub(crate) runner: Runner,
    // A getter, not the table itself: the generated code picks the functions
    // with method resolution, which is not allowed in a `static` initializer.
    pub(crate) args: fn() -> ArgsVTable,
}

impl TaskDef {
    /// The stable name the task is registered and dispatched under.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The Rust path of the task function, e.g. `shop::tasks::send_email`.
    pub fn fn_path(&self) -> &'static str {
        self.fn_path
    }

    /// Where the task is defined, as `file:line`.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    /// Whether the task is a plain or an `async` function.
    pub fn kind(&self) -> TaskKind {
        match self.runner {
            Runner::Sync(_) => TaskKind::Sync,
            Runner::Async(_) => TaskKind::Async,
        }
    }

    /// Decodes arguments from the JSON object an executor or worker carries.
    ///
    /// # Errors
    /// [`ArgsError::Decode`] when the value does not match the task's parameters.
    pub fn decode_args(&'static self, value: serde_json::Value) -> Result<ErasedArgs, ArgsError> {
        ((self.args)().decode)(value).map_err(|source| ArgsError::Decode {
            task: self.name,
            source,
        })
    }

    pub(crate) fn encode_args(
        &self,
        args: &(dyn Any + Send + Sync),
    ) -> Result<serde_json::Value, ArgsError> {
        ((self.args)().encode)(args).map_err(|source| ArgsError::Encode {
            task: self.name,
            source,
        })
    }

    pub(crate) fn fmt_args(
        &self,
        args: &(dyn Any + Send + Sync),
        f: &mut fmt::Formatter<'_>,
    ) -> fmt::Result {
        ((self.args)().fmt)(args, f)
    }

    pub(crate) fn runner(&self) -> Runner {
        self.runner
    }
}

impl fmt::Debug for TaskDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskDef")
            .field("name", &self.name)
            .field("fn_path", &self.fn_path)
            .field("location", &self.location())
            .field("kind", &self.kind())
            .finish()
    }
}

impl PartialEq for TaskDef {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for TaskDef {}

/// What a task function may return: `()`, or `Result<T, E>` whose error converts
/// into a boxed error (`anyhow::Error`, any `std::error::Error`, `String`, ...).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the return type of an #[airlock::task]",
    label = "a task must return `()` or `Result<T, E>` with an error type that converts into `Box<dyn Error + Send + Sync>`",
    note = "return `Result<(), YourError>` where YourError implements std::error::Error, or `anyhow::Result<()>`"
)]
pub trait TaskOutput {
    /// Converts the return value into success or a boxed error.
    fn into_task_result(self) -> Result<(), BoxError>;
}

impl TaskOutput for () {
    fn into_task_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<T, E: Into<BoxError>> TaskOutput for Result<T, E> {
    fn into_task_result(self) -> Result<(), BoxError> {
        self.map(drop).map_err(Into::into)
    }
}

/// How much of a JSON decoding error's text [`ArgsError::Decode`] shows.
const DECODE_TEXT_BYTES: usize = 160;

/// A task's arguments could not be converted from or to JSON.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArgsError {
    /// Serialized arguments could not be decoded into the task's argument type.
    ///
    /// The message shows only the head and tail of the JSON error's text
    /// (clipped): serde quotes the offending value, and a drifted type
    /// must not copy an argument (a token, an email, megabytes of text) into
    /// logs and the queue's result column. The full error is the `source`.
    #[error(
        "the arguments for task `{task}` cannot be decoded: {}. \
         The payload must be a JSON object with the task's parameter names as keys",
        Clipped::new(source, DECODE_TEXT_BYTES)
    )]
    Decode {
        /// The task whose arguments failed to decode.
        task: &'static str,
        /// The underlying JSON error.
        source: serde_json::Error,
    },

    /// Arguments could not be serialized (only happens when an intent leaves the process).
    #[error("the arguments for task `{task}` cannot be serialized: {source}")]
    Encode {
        /// The task whose arguments failed to encode.
        task: &'static str,
        /// The underlying JSON error.
        source: serde_json::Error,
    },
}
