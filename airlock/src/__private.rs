//! Support for the code `#[airlock::task]` and `#[airlock::scoped]` generate.
//! Not public API: nothing here follows semver.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;

pub use ::inventory;
pub use ::serde;
pub use ::serde_json;

pub use crate::registry::Registration;
pub use crate::scope::ScopeOutput;
pub use crate::task::{ArgsVTable, BoxFuture, ErasedArgs, Runner, TaskOutput};
pub use crate::BoxError;
pub use crate::{IntentBuilder, IntentId, Result, Scope, Task, TaskDef};

/// The [`TaskDef`] of a generated task (its `static`).
pub const fn task_def(
    name: &'static str,
    fn_path: &'static str,
    file: &'static str,
    line: u32,
    runner: Runner,
    args: fn() -> ArgsVTable,
) -> TaskDef {
    TaskDef {
        name,
        fn_path,
        file,
        line,
        runner,
        args,
    }
}

/// Implemented by every type that can be a task argument. Exists so a
/// non-serializable argument gets one clear error on the argument itself.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an #[airlock::task] argument: it must implement `Serialize` and `DeserializeOwned`",
    label = "task arguments are buffered and may cross a process boundary, so they must be owned, serializable data",
    note = "derive them: #[derive(serde::Serialize, serde::Deserialize)]; for a type from another crate, wrap it or convert it to one that is"
)]
pub trait TaskArg: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static {}

impl<T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static> TaskArg for T {}

/// Compile-time check, spanned on each argument type. It is the only place
/// the serde bounds of an argument are required (the rest goes through
/// [`Probe`]), so a bad argument gets exactly this error.
pub const fn assert_task_arg<T: TaskArg>() {}

/// Compile-time check, spanned on a `#[scoped]` function's return type: the
/// one place it is reported (the call itself goes through [`Probe`]).
pub const fn assert_scope_output<T: ScopeOutput>() {}

/// Compile-time check, spanned on a task's return type: the one place it is
/// reported (the call itself goes through [`Probe`]).
pub const fn assert_task_output<T: TaskOutput>() {}

/// An error type that can carry a failed flush.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot report a failed flush: a scope's error type needs `From<airlock::Error>`",
    label = "the scope flushes when the body returns `Ok`, and the flush itself can fail",
    note = "add a variant `#[error(transparent)] Airlock(#[from] airlock::Error)` (thiserror) or `impl From<airlock::Error> for {Self}`; or return `airlock::Result<T>` / `anyhow::Result<T>`"
)]
pub trait ScopeError: From<crate::Error> {}

impl<E: From<crate::Error>> ScopeError for E {}

/// Compile-time check, spanned on the `E` of a `#[scoped]` fn's `Result<T, E>`.
pub const fn assert_scope_error<E: ScopeError>() {}

/// An error type a task may return.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a task's error type: it must convert into `Box<dyn Error + Send + Sync>`",
    label = "task failures are reported by the executor or queue worker as boxed errors",
    note = "implement `std::error::Error` for `{Self}` (e.g. with thiserror), or return `anyhow::Result<()>`"
)]
pub trait TaskError: Into<BoxError> {}

impl<E: Into<BoxError>> TaskError for E {}

/// Compile-time check, spanned on the `E` of a task's `Result<T, E>`.
pub const fn assert_task_error<E: TaskError>() {}

/// Runs `#[scoped]` bodies whose return type is a [`ScopeOutput`].
pub trait RunScoped<R> {
    /// Runs a sync body in `scope`.
    fn run_scoped(&self, scope: crate::Scope, body: impl FnOnce() -> R) -> R;
    /// Runs an async body in `scope`.
    fn run_scoped_async<F: std::future::Future<Output = R>>(
        &self,
        scope: crate::Scope,
        body: F,
    ) -> crate::ScopedFuture<F>;
}

impl<R: ScopeOutput> RunScoped<R> for Probe<R> {
    fn run_scoped(&self, scope: crate::Scope, body: impl FnOnce() -> R) -> R {
        scope.run(body)
    }
    fn run_scoped_async<F: std::future::Future<Output = R>>(
        &self,
        scope: crate::Scope,
        body: F,
    ) -> crate::ScopedFuture<F> {
        scope.run_async(body)
    }
}

/// The stub (only chosen when compilation fails anyway).
pub trait StubRunScoped<R> {
    /// Never runs.
    fn run_scoped(&self, scope: crate::Scope, body: impl FnOnce() -> R) -> R;
    /// Never runs.
    fn run_scoped_async<F: std::future::Future<Output = R>>(
        &self,
        scope: crate::Scope,
        body: F,
    ) -> std::future::Pending<R>;
}

impl<R> StubRunScoped<R> for &Probe<R> {
    fn run_scoped(&self, _: crate::Scope, body: impl FnOnce() -> R) -> R {
        body()
    }
    fn run_scoped_async<F: std::future::Future<Output = R>>(
        &self,
        _: crate::Scope,
        _: F,
    ) -> std::future::Pending<R> {
        std::future::pending()
    }
}

/// Converts a task's return value into a result.
pub trait IntoTaskResult<T> {
    /// As [`TaskOutput::into_task_result`].
    fn task_result(&self, value: T) -> Result<(), BoxError>;
}

impl<T: TaskOutput> IntoTaskResult<T> for Probe<T> {
    fn task_result(&self, value: T) -> Result<(), BoxError> {
        value.into_task_result()
    }
}

/// The stub (only chosen when compilation fails anyway).
pub trait StubIntoTaskResult<T> {
    /// Never runs.
    fn task_result(&self, value: T) -> Result<(), BoxError>;
}

impl<T> StubIntoTaskResult<T> for &Probe<T> {
    fn task_result(&self, _: T) -> Result<(), BoxError> {
        Err("unreachable: the task's return type failed to compile".into())
    }
}

/// Autoref specialization: `(&Probe::<T>::new()).method()` resolves to the
/// serde-backed impl when `T` is serializable and to a stub otherwise. The stub
/// is never run: a non-serializable argument already failed `assert_task_arg`,
/// and picking it keeps the compiler from reporting the same problem again at
/// every place the generated code serializes.
#[derive(Debug)]
pub struct Probe<T>(PhantomData<fn() -> T>);

impl<T> Probe<T> {
    /// A probe for `T`.
    pub const fn new() -> Self {
        Probe(PhantomData)
    }
}

impl<T> Default for Probe<T> {
    fn default() -> Self {
        Self::new()
    }
}

type EncodeFn = fn(&(dyn Any + Send + Sync)) -> Result<serde_json::Value, serde_json::Error>;
type DecodeFn = fn(serde_json::Value) -> Result<ErasedArgs, serde_json::Error>;

/// The serde-backed codec for a task's arguments.
pub trait SerdeCodec {
    /// Encoder and decoder.
    fn codec(&self) -> (EncodeFn, DecodeFn);
}

impl<A: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static> SerdeCodec
    for Probe<A>
{
    fn codec(&self) -> (EncodeFn, DecodeFn) {
        (encode::<A>, decode::<A>)
    }
}

/// The stub codec (only chosen when compilation fails anyway).
pub trait StubCodec {
    /// Encoder and decoder that always fail.
    fn codec(&self) -> (EncodeFn, DecodeFn);
}

impl<A> StubCodec for &Probe<A> {
    fn codec(&self) -> (EncodeFn, DecodeFn) {
        fn encode(_: &(dyn Any + Send + Sync)) -> Result<serde_json::Value, serde_json::Error> {
            Err(serde::ser::Error::custom("arguments are not serializable"))
        }
        fn decode(_: serde_json::Value) -> Result<ErasedArgs, serde_json::Error> {
            Err(serde::de::Error::custom("arguments are not deserializable"))
        }
        (encode, decode)
    }
}

/// Writes one argument the way `Display` of an intent shows it.
pub trait SerdeFmt<T> {
    /// Writes `value` as JSON, preceded by `, ` unless it is the first.
    fn fmt_arg(&self, f: &mut fmt::Formatter<'_>, first: bool, value: &T) -> fmt::Result;
}

impl<T: serde::Serialize> SerdeFmt<T> for Probe<T> {
    fn fmt_arg(&self, f: &mut fmt::Formatter<'_>, first: bool, value: &T) -> fmt::Result {
        if !first {
            f.write_str(", ")?;
        }
        match serde_json::to_string(value) {
            Ok(json) => f.write_str(&json),
            Err(_) => f.write_str("<unserializable>"),
        }
    }
}

/// The stub formatter (only chosen when compilation fails anyway).
pub trait StubFmt<T> {
    /// Writes a placeholder.
    fn fmt_arg(&self, f: &mut fmt::Formatter<'_>, first: bool, value: &T) -> fmt::Result;
}

impl<T> StubFmt<T> for &Probe<T> {
    fn fmt_arg(&self, f: &mut fmt::Formatter<'_>, _: bool, _: &T) -> fmt::Result {
        f.write_str("?")
    }
}

/// What generated `my_task::enqueue(..)` calls: [`crate::enqueue()`] of
/// `Intent::new::<T>(args)`, minus the intermediate intent in the common case.
#[track_caller]
#[inline]
pub fn enqueue<T: crate::Task>(args: T::Args) -> crate::Result<crate::IntentId> {
    crate::enqueue::enqueue_new(T::def(), args, std::panic::Location::caller())
}

/// Recovers the concrete arguments of a task from their erased box.
pub fn downcast<A: Any>(args: ErasedArgs, task: &str) -> A {
    match args.downcast::<A>() {
        Ok(args) => *args,
        Err(_) => panic!("airlock: arguments of the wrong type reached task `{task}`; this is a bug in whatever built the intent"),
    }
}

fn encode<A: serde::Serialize + Any>(
    args: &(dyn Any + Send + Sync),
) -> Result<serde_json::Value, serde_json::Error> {
    match args.downcast_ref::<A>() {
        Some(args) => serde_json::to_value(args),
        None => Err(serde::ser::Error::custom(
            "arguments of the wrong type for this task",
        )),
    }
}

fn decode<A: serde::de::DeserializeOwned + Send + Sync + 'static>(
    value: serde_json::Value,
) -> Result<ErasedArgs, serde_json::Error> {
    serde_json::from_value::<A>(value).map(|args| Box::new(args) as ErasedArgs)
}

/// Views erased arguments as the concrete type, for `Display`.
pub fn args_ref<A: Any>(args: &(dyn Any + Send + Sync)) -> Option<&A> {
    args.downcast_ref::<A>()
}

/// Boxes an async task's future.
pub fn boxed<F>(future: F) -> BoxFuture<'static, F::Output>
where
    F: std::future::Future + Send + 'static,
{
    Box::pin(future)
}
