//! [`ScopedFuture`]: a body run in a new scope, on the one
//! [lifecycle](super::lifecycle), ended as the scope's behaviour decides.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::error::Error;
use crate::flush::FlushReport;
use crate::scope::active::ActiveScope;
use crate::scope::behavior::Outcome;
use crate::scope::info::DiscardReason;
use crate::scope::lifecycle::{Ending, Finish, Lifecycle};
use crate::scope::output::ScopeOutput;
use crate::scope::settings::Scope;

/// The ending of a plain scope: its behaviour decides between flush and
/// discard, and a failed flush replaces an `Ok` with its error.
pub(crate) struct ByBehavior;

impl<O: ScopeOutput> Ending<O> for ByBehavior {
    type Kept = O;
    type Output = O;

    fn end(&mut self, scope: ActiveScope, output: Option<O>) -> (Option<O>, Option<Finish>) {
        let outcome = match &output {
            Some(output) if output.is_success() => Outcome::Success,
            Some(_) => Outcome::Error,
            None => Outcome::Panic,
        };
        if scope.should_flush(outcome) {
            (output, Some(Box::pin(scope.flush_async())))
        } else {
            scope.discard_with(DiscardReason::from(outcome));
            (output, None)
        }
    }

    fn complete(&mut self, output: O, finished: Option<Result<FlushReport, Error>>) -> O {
        match finished {
            Some(Err(error)) => output.absorb_flush_error(error),
            _ => output,
        }
    }
}

pin_project! {
    /// A future running inside its own scope; see [`Scope::run_async`].
    ///
    /// It is `Send` whenever the body future and its output are.
    #[must_use = "futures do nothing unless polled"]
    pub struct ScopedFuture<F: Future> {
        #[pin]
        inner: Lifecycle<F, ByBehavior, F::Output>,
    }
}

impl<F: Future> ScopedFuture<F>
where
    F::Output: ScopeOutput,
{
    pub(crate) fn new(scope: Scope, body: F) -> Self {
        ScopedFuture {
            inner: Lifecycle::new(scope, body, ByBehavior),
        }
    }
}

impl<F: Future> Future for ScopedFuture<F>
where
    F::Output: ScopeOutput,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

impl<F: Future> fmt::Debug for ScopedFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedFuture")
            .field("state", &self.inner.stage())
            .finish_non_exhaustive()
    }
}

impl Scope {
    /// Runs `body` inside the scope, entering it on every poll. Flushes (with the
    /// executor's async path, so async tasks are awaited) when it resolves to
    /// `Ok`; discards on `Err`, panic, or if the future is dropped first.
    pub fn run_async<F>(self, body: F) -> ScopedFuture<F>
    where
        F: Future,
        F::Output: ScopeOutput,
    {
        ScopedFuture::new(self, body)
    }
}
