//! Support for the code `#[airlock::task]` and `#[airlock::scoped]` generate.
//! Not public API: nothing here follows semver.

use std::any::Any;
use std::fmt;

pub use ::inventory;
pub use ::serde;
pub use ::serde_json;

pub use crate::registry::Registration;
pub use crate::scope::{ScopeOutput, ScopedFuture};
pub use crate::task::{ArgsVTable, BoxFuture, ErasedArgs, Runner, TaskOutput};
pub use crate::BoxError;

/// Implemented by every type that can be a task argument. Exists so a
/// non-serializable argument gets one clear error on the argument itself.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an #[airlock::task] argument: it must implement `Serialize` and `DeserializeOwned`",
    label = "task arguments are buffered and may cross a process boundary, so they must be owned, serializable data",
    note = "derive them: #[derive(serde::Serialize, serde::Deserialize)]; for a type from another crate, wrap it or convert it to one that is"
)]
pub trait TaskArg: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static {}

impl<T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static> TaskArg for T {}

/// Compile-time check, spanned on each argument type.
pub const fn assert_task_arg<T: TaskArg>() {}

/// Compile-time check, spanned on a `#[scoped]` function's return type.
pub const fn assert_scope_output<T: ScopeOutput>() {}

/// Compile-time check, spanned on a task's return type.
pub const fn assert_task_output<T: TaskOutput>() {}

/// Recovers the concrete arguments of a task from their erased box.
pub fn downcast<A: Any>(args: ErasedArgs, task: &str) -> A {
    match args.downcast::<A>() {
        Ok(args) => *args,
        Err(_) => panic!("airlock: arguments of the wrong type reached task `{task}`; this is a bug in whatever built the intent"),
    }
}

/// Encodes erased arguments as the JSON object they travel as.
pub fn encode<A: serde::Serialize + Any>(
    args: &(dyn Any + Send + Sync),
) -> Result<serde_json::Value, serde_json::Error> {
    match args.downcast_ref::<A>() {
        Some(args) => serde_json::to_value(args),
        None => Err(serde::ser::Error::custom("arguments of the wrong type for this task")),
    }
}

/// Decodes the JSON object of a task's arguments.
pub fn decode<A: serde::de::DeserializeOwned + Send + Sync + 'static>(
    value: serde_json::Value,
) -> Result<ErasedArgs, serde_json::Error> {
    serde_json::from_value::<A>(value).map(|args| Box::new(args) as ErasedArgs)
}

/// Writes one argument the way `Display` of an intent shows it.
pub fn fmt_arg<T: serde::Serialize>(f: &mut fmt::Formatter<'_>, first: bool, value: &T) -> fmt::Result {
    if !first {
        f.write_str(", ")?;
    }
    match serde_json::to_string(value) {
        Ok(json) => f.write_str(&json),
        Err(_) => f.write_str("<unserializable>"),
    }
}

/// Views erased arguments as the concrete type, for `Display`.
pub fn args_ref<'a, A: Any>(args: &'a (dyn Any + Send + Sync)) -> Option<&'a A> {
    args.downcast_ref::<A>()
}

/// Boxes an async task's future.
pub fn boxed<F>(future: F) -> BoxFuture<'static, F::Output>
where
    F: std::future::Future + Send + 'static,
{
    Box::pin(future)
}
