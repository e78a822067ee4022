//! The one error type every fallible airlock operation returns.

use std::fmt;

use crate::flush::DispatchFailure;
use crate::scope::{ScopeInfo, ScopePhase};

/// A boxed error as tasks and executors report it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`enum@Error`] as its error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when enqueueing, flushing or configuring.
///
/// Each message says what happened and what to do about it. The enum is
/// `#[non_exhaustive]`: match the variants you handle and keep a `_` arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `enqueue` was called where no scope is active.
    #[error(
        "cannot enqueue `{task}`: no airlock scope is active on this thread or task. \
         Run the caller inside a scope: #[airlock::scoped], airlock::scope(|| ...), \
         airlock::scope_async(...), or carry a scope into a spawned task with ScopeHandle::bind"
    )]
    NoScope {
        /// The task that was being enqueued.
        task: &'static str,
    },

    /// The scope already ended (flushed or discarded); it takes no more intents.
    #[error(
        "cannot enqueue `{task}`: {scope} has already {phase}; it takes no more intents. \
         Enqueue before the scope ends, or start a new scope for later work"
    )]
    ScopeClosed {
        /// The task that was being enqueued.
        task: &'static str,
        /// The scope that refused it.
        scope: ScopeInfo,
        /// What the scope did when it ended.
        phase: ScopePhase,
    },

    /// The scope already holds as many intents as it may
    /// ([`Config::max_intents_per_scope`](crate::Config::max_intents_per_scope));
    /// the intent was not buffered.
    #[error(
        "cannot enqueue `{task}`: {scope} already holds {limit} intents, its limit \
         (Config::max_intents_per_scope). A loop that enqueues without end? Otherwise work \
         in smaller scopes (one per batch), or raise the limit"
    )]
    ScopeFull {
        /// The task that was being enqueued.
        task: &'static str,
        /// The full scope.
        scope: ScopeInfo,
        /// The limit in force.
        limit: usize,
    },

    /// A policy's `on_enqueue` rejected the intent; it was not buffered.
    #[error(transparent)]
    PolicyViolation(#[from] PolicyViolation),

    /// `enqueue` was called from inside a policy method.
    #[error(
        "cannot enqueue `{task}` from inside a policy: policies observe and filter intents, \
         they must not create them. Move the enqueue out of the policy"
    )]
    PolicyEnqueue {
        /// The task that was being enqueued.
        task: &'static str,
    },

    /// `enqueue` was called while this thread holds the scope's intents for inspection.
    #[error(
        "cannot enqueue `{task}` while the scope's intents are borrowed for inspection on this \
         thread; drop the guard returned by `intents()` first"
    )]
    ScopeBusy {
        /// The task that was being enqueued.
        task: &'static str,
    },

    /// No task is registered under this name.
    #[error("{0}")]
    UnknownTask(#[from] UnknownTask),

    /// Two tasks were registered under the same name.
    #[error(
        "task name `{name}` is registered twice: at {first} and at {second}. \
         Task names cross process boundaries and must be unique: give one of them \
         #[airlock::task(name = \"...\")]"
    )]
    DuplicateTask {
        /// The duplicated name.
        name: String,
        /// Where the first registration is (`file:line`).
        first: String,
        /// Where the second registration is (`file:line`).
        second: String,
    },

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

    /// A payload is not an airlock envelope, or a malformed one.
    #[error("{reason}")]
    Envelope {
        /// What is wrong with it.
        reason: String,
    },

    /// An envelope was written in a format version this build does not read.
    #[error(
        "the job is an airlock envelope of version {found}, but this worker reads version \
         {supported}: deploy the new airlock version to workers before producers, or drain \
         the queue with the old workers"
    )]
    EnvelopeVersion {
        /// The version the envelope carries.
        found: u64,
        /// The version this build reads.
        supported: u32,
    },

    /// Configuration was invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// The executor failed during flush; nothing after the failure was dispatched.
    #[error(transparent)]
    Dispatch(Box<DispatchFailure>),

    /// A nested scope ended after its parent had ended; its intents were discarded.
    #[error(
        "{scope} ended after its parent {parent} had already ended, so its intents {lost:?} \
         were discarded. A scope carried into a spawned task must finish before the scope \
         it came from: await the task inside the parent scope"
    )]
    ParentClosed {
        /// The scope that ended late.
        scope: ScopeInfo,
        /// The parent that had already ended.
        parent: ScopeInfo,
        /// The discarded intents, as `task(args)`.
        lost: Vec<String>,
    },

    /// A policy panicked while flush was filtering; nothing was dispatched.
    #[error(
        "a policy panicked while {scope} was filtering its intents, so none were dispatched: \
         {message}"
    )]
    PolicyPanicked {
        /// The scope whose flush was aborted.
        scope: ScopeInfo,
        /// The panic message.
        message: String,
    },

    /// A transaction scope's database transaction could not commit (or, with
    /// [`Durability::CoCommit`](crate::Durability::CoCommit), its intents could
    /// not be written into it): the transaction rolled back, business data and
    /// intents alike, and nothing was dispatched.
    #[error(
        "{scope}: the database transaction failed to {action}, so it was rolled back and none \
         of its intents were dispatched: {source}"
    )]
    Transaction {
        /// The transaction scope.
        scope: ScopeInfo,
        /// What failed: `"commit"` or `"queue its intents"`.
        action: &'static str,
        /// The database error.
        source: BoxError,
    },

    /// A transaction scope sent `COMMIT` and the connection failed before the
    /// database answered: the transaction committed or rolled back, business
    /// rows and co-committed jobs together, and only the database knows
    /// which. Its intents are reported `Interrupted`, never dispatched.
    #[error(
        "{scope}: the connection failed after COMMIT was sent and before the database \
         answered, so the outcome is unknown: your rows (and any co-committed jobs) \
         committed together or not at all. Its intents were not dispatched (reported \
         interrupted); check the database before retrying: {source}"
    )]
    TransactionInDoubt {
        /// The transaction scope.
        scope: ScopeInfo,
        /// An after-commit scope's intents, never dispatched: dispatch them
        /// yourself once the database shows the transaction committed.
        /// Empty for co-commit (its jobs share the transaction's fate).
        in_doubt: Vec<crate::intent::Intent>,
        /// The connection error.
        source: BoxError,
    },

    /// A [savepoint scope](crate::tx::savepoint) could not be opened,
    /// released or rolled back.
    #[error("could not {action} the savepoint: {reason}")]
    Savepoint {
        /// What failed: `"open"`, `"release"` or `"roll back"`.
        action: &'static str,
        /// Why.
        reason: BoxError,
    },

    /// An intent's `delay` or `run_at` lies beyond what a queue can schedule
    /// (after the year 9999), or an executor cannot honour it.
    #[error("cannot schedule `{task}`: {reason}")]
    Schedule {
        /// The task whose schedule was refused.
        task: &'static str,
        /// What is wrong with it, and what to do.
        reason: String,
    },

    /// A scope method was called in a state that does not allow it.
    #[error("{0}")]
    State(String),

    /// A scope was asked to end after it had already ended. Ending methods
    /// consume the [`ActiveScope`](crate::ActiveScope), so this means a scope
    /// ended behind its owner's back (a bug in an integration).
    #[error("{scope} has already {phase}; a scope ends once")]
    ScopeEnded {
        /// The scope.
        scope: ScopeInfo,
        /// What the scope did when it ended.
        phase: ScopePhase,
    },
}

/// How much of a JSON decoding error's text [`Error::Decode`] shows.
const DECODE_TEXT_BYTES: usize = 160;

/// Shows at most about `max` bytes of a value's text: its head and its tail
/// with the middle replaced by `[… N bytes …]`, cut on character
/// boundaries.
///
/// Error texts that come from the wire (a serde error quoting an argument, a
/// task name, a task's own error) go through it before they reach a log or a
/// queue's result column, so no payload can make them large.
///
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clipped<'a, T: ?Sized> {
    value: &'a T,
    max: usize,
}

impl<'a, T: fmt::Display + ?Sized> Clipped<'a, T> {
    /// `value`'s text, at most about `max` bytes of it.
    pub(crate) fn new(value: &'a T, max: usize) -> Self {
        Clipped { value, max }
    }
}

impl<T: fmt::Display + ?Sized> fmt::Display for Clipped<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.value.to_string();
        if text.len() <= self.max {
            return f.write_str(&text);
        }
        // Two thirds for the head (what it is), a third for the tail (what
        // was expected, and where): serde puts the quoted value in between.
        let head = floor_char_boundary(&text, self.max * 2 / 3);
        let tail = ceil_char_boundary(&text, text.len() - self.max / 3);
        write!(
            f,
            "{}[… {} bytes …]{}",
            &text[..head],
            tail - head,
            &text[tail..]
        )
    }
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn ceil_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at += 1;
    }
    at
}

impl From<DispatchFailure> for Error {
    fn from(failure: DispatchFailure) -> Self {
        Error::Dispatch(Box::new(failure))
    }
}

/// A policy refused an intent at enqueue time.
#[derive(Debug, Clone, thiserror::Error)]
#[error("policy {policy} rejected `{task}` (enqueued at {origin}): {reason}")]
pub struct PolicyViolation {
    /// The name of the policy that refused.
    pub policy: String,
    /// The task that was refused.
    pub task: &'static str,
    /// Where the refused `enqueue` was called.
    pub origin: String,
    /// Why, in the policy's words.
    pub reason: String,
}

/// No task is registered under a name; carries the names that are.
#[derive(Debug, Clone, thiserror::Error)]
pub struct UnknownTask {
    /// The name that was looked up.
    pub name: String,
    /// The registered names closest to `name`, best first.
    pub suggestions: Vec<String>,
    /// Every registered name, sorted.
    pub known: Vec<String>,
}

impl fmt::Display for UnknownTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The name may come from the wire: show a bounded part of it.
        write!(
            f,
            "no task is registered under the name `{}`",
            Clipped::new(&self.name, 120)
        )?;
        if !self.suggestions.is_empty() {
            write!(f, "; did you mean ")?;
            write_names(f, &self.suggestions, " or ")?;
            write!(f, "?")?;
        } else {
            write!(f, ".")?;
        }
        if self.known.is_empty() {
            write!(
                f,
                " No tasks are registered at all: is the crate that defines them linked? \
                 Add `use that_crate as _;` to the binary"
            )
        } else {
            write!(f, " Registered tasks: ")?;
            write_names(f, &self.known, ", ")?;
            write!(
                f,
                ". A task defined in a crate the binary never uses is not linked: \
                 add `use that_crate as _;`"
            )
        }
    }
}

fn write_names(f: &mut fmt::Formatter<'_>, names: &[String], sep: &str) -> fmt::Result {
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(f, "`{name}`")?;
    }
    Ok(())
}

/// Configuration could not be built or applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A policy names a task that is not registered.
    #[error("{setting}: {lookup}")]
    UnknownTask {
        /// Where the name came from, e.g. `AIRLOCK_BLOCK_TASKS`.
        setting: String,
        /// The failed lookup, with suggestions and the registered names.
        lookup: UnknownTask,
    },
    /// A setting has a value airlock does not understand.
    #[error("invalid value {value:?} for {setting}: {expected}")]
    InvalidValue {
        /// The setting, e.g. an environment variable name.
        setting: String,
        /// The value found.
        value: String,
        /// What would be accepted instead.
        expected: String,
    },
    /// The task registry is inconsistent (duplicate names).
    #[error(transparent)]
    Registry(Box<Error>),
}

#[cfg(test)]
mod tests {
    use super::Clipped;

    #[test]
    fn clipped_keeps_a_short_text_whole_and_a_long_one_bounded_at_both_ends() {
        assert_eq!(Clipped::new("short", 80).to_string(), "short");
        let text = format!(
            "invalid type: string \"{}\", expected u64",
            "x".repeat(10_000)
        );
        let shown = Clipped::new(&text, 80).to_string();
        assert!(shown.len() < 120, "{shown}");
        assert!(shown.starts_with("invalid type: string \"xxx"), "{shown}");
        assert!(shown.ends_with("expected u64"), "{shown}");
        assert!(shown.contains("bytes …]"), "{shown}");
        // Multi-byte characters are cut on their boundaries, never inside.
        let wide = "é".repeat(1_000);
        let shown = Clipped::new(&wide, 81).to_string();
        assert!(shown.len() < 130, "{shown}");
    }
}
