//! Scopes that travel with a future.
//!
//! A scoped future never keeps its scope entered across `.await`: it pushes the
//! scope's frame at the start of every `poll` and pops it before returning
//! (also while the body is dropped), so the scope follows the task from thread
//! to thread on a work-stealing runtime and never leaks to a task polled next
//! on the same thread.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::error::Error;
use crate::flush::{FlushReport, Report};
use crate::scope::active::enter_core;
use crate::scope::{ActiveScope, DiscardReason, Outcome, Scope, ScopeHandle, ScopeOutput};
use crate::task::BoxFuture;

pin_project! {
    #[project = BodyProj]
    enum Body<F> {
        Live { #[pin] future: F },
        Gone,
    }
}

enum State<O> {
    /// Not polled yet: the scope starts on first poll, under whatever scope is
    /// current there (that is its parent).
    Pending(Scope),
    Running(ActiveScope),
    Flushing {
        flush: BoxFuture<'static, Result<FlushReport, Error>>,
        finished: Option<Finished<O>>,
    },
    Done,
}

/// How the body ended: with a value, or with a panic to resume after the flush.
enum Finished<O> {
    Output(O),
    Panic(Box<dyn Any + Send>),
}

impl<O> Finished<O> {
    fn resume(self) -> O {
        match self {
            Finished::Output(output) => output,
            Finished::Panic(panic) => std::panic::resume_unwind(panic),
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
        body: Body<F>,
        state: State<F::Output>,
    }

    impl<F: Future> PinnedDrop for ScopedFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if let State::Running(active) = std::mem::replace(this.state, State::Done) {
                {
                    // Drop the body with its scope current, so intents enqueued by
                    // destructors land in the scope being discarded, not its parent.
                    let _entered = active.enter();
                    this.body.set(Body::Gone);
                }
                let reason = if std::thread::panicking() {
                    DiscardReason::Panic
                } else {
                    DiscardReason::Cancelled
                };
                active.discard_with(reason);
            }
        }
    }
}

impl<F: Future> ScopedFuture<F>
where
    F::Output: ScopeOutput,
{
    pub(crate) fn new(scope: Scope, body: F) -> Self {
        ScopedFuture {
            body: Body::Live { future: body },
            state: State::Pending(scope),
        }
    }
}

impl<F: Future> Future for ScopedFuture<F>
where
    F::Output: ScopeOutput,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        loop {
            match this.state {
                State::Pending(_) => {
                    let State::Pending(scope) = std::mem::replace(this.state, State::Done) else {
                        unreachable!()
                    };
                    *this.state = State::Running(scope.start());
                }
                State::Running(active) => {
                    // A panic in the body is caught so the behaviour can decide
                    // (flush or discard) before it continues unwinding.
                    let poll = {
                        let _entered = active.enter();
                        let body = this.body.as_mut();
                        std::panic::catch_unwind(AssertUnwindSafe(|| match body.project() {
                            BodyProj::Live { future } => future.poll(cx),
                            BodyProj::Gone => {
                                unreachable!("the body is dropped only after it completes")
                            }
                        }))
                    };
                    let finished = match poll {
                        Ok(Poll::Pending) => return Poll::Pending,
                        Ok(Poll::Ready(output)) => Finished::Output(output),
                        Err(panic) => Finished::Panic(panic),
                    };
                    {
                        let _entered = active.enter();
                        this.body.set(Body::Gone);
                    }
                    let State::Running(active) = std::mem::replace(this.state, State::Done) else {
                        unreachable!()
                    };
                    let outcome = match &finished {
                        Finished::Output(output) if output.is_success() => Outcome::Success,
                        Finished::Output(_) => Outcome::Error,
                        Finished::Panic(_) => Outcome::Panic,
                    };
                    if !active.should_flush(outcome) {
                        active.discard_with(DiscardReason::from(outcome));
                        return Poll::Ready(finished.resume());
                    }
                    *this.state = State::Flushing {
                        flush: Box::pin(active.flush_async_for(Report::Dropped)),
                        finished: Some(finished),
                    };
                }
                State::Flushing { flush, finished } => {
                    let result = std::task::ready!(flush.as_mut().poll(cx));
                    let finished = finished.take().expect("kept until the flush ends");
                    *this.state = State::Done;
                    return Poll::Ready(match (finished, result) {
                        (finished, Ok(_)) => finished.resume(),
                        (Finished::Output(output), Err(error)) => output.absorb_flush_error(error),
                        (Finished::Panic(panic), Err(error)) => {
                            tracing::error!(target: "airlock::scope", %error, "flush after a panic failed");
                            std::panic::resume_unwind(panic)
                        }
                    });
                }
                State::Done => panic!("ScopedFuture polled after completion"),
            }
        }
    }
}

impl<F: Future> fmt::Debug for ScopedFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Pending(_) => "pending",
            State::Running(_) => "running",
            State::Flushing { .. } => "flushing",
            State::Done => "done",
        };
        f.debug_struct("ScopedFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// A future with an existing scope current on every poll; see [`ScopeHandle::bind`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Bound<F> {
        #[pin]
        future: F,
        scope: ScopeHandle,
    }
}

impl<F> Bound<F> {
    pub(crate) fn new(scope: ScopeHandle, future: F) -> Self {
        Bound { future, scope }
    }
}

impl<F: Future> Future for Bound<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = enter_core(&this.scope.0);
        this.future.poll(cx)
    }
}

impl<F> fmt::Debug for Bound<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bound")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}
