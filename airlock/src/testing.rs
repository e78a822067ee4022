//! Helpers for testing code that enqueues: capture its intents without
//! dispatching them, or assert it enqueues nothing.
//!
//! ```
//! use airlock::testing;
//! # #[airlock::task] fn send_email(user_id: u64) { let _ = user_id; }
//!
//! fn sign_up(user_id: u64) -> airlock::Result<()> {
//!     send_email::enqueue(user_id)?;
//!     Ok(())
//! }
//!
//! let captured = testing::capture(|| sign_up(7));
//! captured.assert_names(&["send_email"]);
//! assert_eq!(captured.args::<send_email>()[0].user_id, 7);
//!
//! testing::assert_no_effects(|| 2 + 2);
//! ```

use std::fmt;
use std::future::Future;

use std::sync::Arc;

use crate::buffer::{Buffer, Chain, Chains};
use crate::intent::Intent;
use crate::policy::Policy;
use crate::scope::settings::Scope;
use crate::scope::state;
use crate::task::Task;

/// What a closure returned, and the intents it enqueued (none dispatched).
pub struct Captured<R> {
    /// The closure's return value.
    pub value: R,
    /// Everything it enqueued, in FIFO order.
    pub intents: Vec<Intent>,
    /// The policies each intent was enqueued under.
    chains: Chains,
}

impl<R> Captured<R> {
    fn new(value: R, buffer: Buffer) -> Self {
        let (intents, chains) = buffer.into_parts();
        Captured {
            value,
            intents,
            chains,
        }
    }

    fn chain_of(&self, intent: &Intent) -> Option<&Chain> {
        self.chains.of(&self.intents, intent)
    }

    /// The policies of the `with_policy` blocks `intent` (one of
    /// [`intents`](Self::intents)) was enqueued in, innermost first.
    pub fn local_policies(&self, intent: &Intent) -> impl Iterator<Item = &Arc<dyn Policy>> {
        state::local_policies(self.chain_of(intent))
    }

    /// Whether every local policy `intent` (one of
    /// [`intents`](Self::intents)) was enqueued under allows it: whether a
    /// flush would keep it, as far as those policies are concerned.
    pub fn passes_local_policies(&self, intent: &Intent) -> bool {
        state::passes_local_policies(self.chain_of(intent), intent)
    }
}

/// Runs `body` in a fresh outermost scope and returns what it enqueued instead
/// of dispatching it. Enqueue-time policies from the configuration still apply.
pub fn capture<R>(body: impl FnOnce() -> R) -> Captured<R> {
    let active = Scope::new()
        .detached()
        .name("airlock::testing::capture")
        .start();
    let value = active.in_scope(body);
    Captured::new(value, active.into_buffer())
}

/// The async form of [`capture`]: `body` runs with the capturing scope current
/// on every poll.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use airlock::testing;
/// # #[airlock::task] fn send_email(user_id: u64) { let _ = user_id; }
///
/// async fn sign_up(user_id: u64) -> airlock::Result<u64> {
///     tokio::task::yield_now().await; // the scope follows the future
///     send_email::enqueue(user_id)?;
///     Ok(user_id)
/// }
///
/// let captured = testing::capture_async(sign_up(7)).await;
/// assert!(matches!(captured.value, Ok(7)));
/// captured.assert_names(&["send_email"]);
/// assert_eq!(captured.args::<send_email>()[0].user_id, 7);
/// # }
/// ```
pub async fn capture_async<F: Future>(body: F) -> Captured<F::Output> {
    let active = Scope::new()
        .detached()
        .name("airlock::testing::capture")
        .start();
    let value = active.handle().bind(body).await;
    Captured::new(value, active.into_buffer())
}

/// Runs `body` and panics, listing what was enqueued, if it enqueued anything.
#[track_caller]
pub fn assert_no_effects<R>(body: impl FnOnce() -> R) -> R {
    let captured = capture(body);
    if !captured.intents.is_empty() {
        panic!(
            "expected no side effects, but {}",
            Listing(&captured.intents)
        );
    }
    captured.value
}

impl<R> Captured<R> {
    /// The task names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.intents.iter().map(Intent::name).collect()
    }

    /// The arguments of every intent for task `T`, in order.
    pub fn args<T: Task>(&self) -> Vec<&T::Args> {
        self.intents.iter().filter_map(Intent::args::<T>).collect()
    }

    /// Panics, listing what was enqueued, unless the task names are exactly `expected`.
    #[track_caller]
    pub fn assert_names(&self, expected: &[&str]) {
        if self.names() != expected {
            panic!(
                "expected the intents {expected:?}, but {}",
                Listing(&self.intents)
            );
        }
    }

    /// Panics, listing what was enqueued, unless some intent is for `name`.
    #[track_caller]
    pub fn assert_enqueued(&self, name: &str) {
        if !self.intents.iter().any(|i| i.name() == name) {
            panic!(
                "expected an intent for `{name}`, but {}",
                Listing(&self.intents)
            );
        }
    }

    /// Panics unless nothing was enqueued.
    #[track_caller]
    pub fn assert_empty(&self) {
        if !self.intents.is_empty() {
            panic!("expected no intents, but {}", Listing(&self.intents));
        }
    }
}

impl<R: fmt::Debug> fmt::Debug for Captured<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Captured")
            .field("value", &self.value)
            .field("intents", &self.intents)
            .finish()
    }
}

/// "N intent(s) were enqueued:" and one `task(args) at file:line` per line.
struct Listing<'a>(&'a [Intent]);

impl fmt::Display for Listing<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("nothing was enqueued");
        }
        write!(f, "{} intent(s) were enqueued:", self.0.len())?;
        for intent in self.0 {
            write!(f, "\n  {intent} at {}", intent.origin())?;
        }
        Ok(())
    }
}
