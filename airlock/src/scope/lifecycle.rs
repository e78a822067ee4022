//! One lifecycle for every scope driven by a future: `#[scoped] async fn`,
//! [`scope_async`](crate::scope_async), request scopes (feature `tower`) and
//! transaction scopes (feature `sqlx`).
//!
//! The future enters its scope on every poll and leaves it before returning
//! (also while its body is dropped), so the scope follows the task from
//! thread to thread on a work-stealing runtime and never leaks to a task
//! polled next on the same thread. When the body completes (or panics), an
//! [`Ending`] decides and finishes: the integration plugs in how its output
//! counts and what ending the scope takes (a flush, a commit), not a copy of
//! the lifecycle. Dropped before the body completed, the scope discards.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::error::Error;
use crate::flush::FlushReport;
use crate::scope::active::ActiveScope;
use crate::scope::info::DiscardReason;
use crate::scope::settings::Scope;
use crate::task::BoxFuture;

/// The work that ends a scope after its body: a flush, or a commit and a
/// flush.
pub(crate) type Finish = BoxFuture<'static, Result<FlushReport, Error>>;

/// How a scope driven by a future ends: what its body's output means, and
/// what ending the scope takes.
pub(crate) trait Ending<O> {
    /// What [`end`](Self::end) keeps of the body's output until the finish
    /// is done (often the output itself).
    type Kept;
    /// What the lifecycle future resolves to.
    type Output;

    /// Ends `scope` for a body that returned `output`, or panicked (`None`;
    /// the panic continues once the finish is done), usually as the scope's
    /// behaviour decides ([`ActiveScope::should_flush`]). Returns what to
    /// keep and the work still to await, if any.
    fn end(
        &mut self,
        scope: ActiveScope,
        output: Option<O>,
    ) -> (Option<Self::Kept>, Option<Finish>);

    /// The future's output, from what was kept and how the finish went.
    fn complete(
        &mut self,
        kept: Self::Kept,
        finished: Option<Result<FlushReport, Error>>,
    ) -> Self::Output;

    /// Ends a scope whose future was dropped before its body completed.
    fn cancel(scope: ActiveScope) {
        scope.discard_with(DiscardReason::Cancelled);
    }
}

pin_project! {
    #[project = BodyProj]
    enum Body<F> {
        Live { #[pin] future: F },
        Gone,
    }
}

enum State<K> {
    /// Not polled yet: the scope starts on first poll, under whatever is
    /// current there (its parent).
    Pending(Scope),
    Running(ActiveScope),
    Finishing {
        finish: Option<Finish>,
        kept: Option<K>,
        panic: Option<Box<dyn Any + Send>>,
    },
    Done,
}

pin_project! {
    /// A future running inside its own scope, ended by `E`, which keeps a
    /// `K` of the body's output while it finishes.
    pub(crate) struct Lifecycle<F, E, K> {
        #[pin]
        body: Body<F>,
        state: State<K>,
        ending: E,
        // `E::cancel`, taken where `E`'s bounds are known: a `Drop` impl
        // cannot ask for more than the struct does.
        cancel: fn(ActiveScope),
    }

    impl<F, E, K> PinnedDrop for Lifecycle<F, E, K> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if let State::Running(scope) = std::mem::replace(this.state, State::Done) {
                {
                    // Drop the body with its scope current, so intents
                    // enqueued by destructors land in the scope being
                    // discarded, not its parent.
                    let _entered = scope.enter();
                    this.body.set(Body::Gone);
                }
                if std::thread::panicking() {
                    scope.discard_with(DiscardReason::Panic);
                } else {
                    (this.cancel)(scope);
                }
            }
        }
    }
}

impl<F: Future, E: Ending<F::Output, Kept = K>, K> Lifecycle<F, E, K> {
    /// Starts the scope `settings` on first poll.
    pub(crate) fn new(settings: Scope, body: F, ending: E) -> Self {
        Self::with_state(State::Pending(settings), body, ending)
    }

    /// Runs `body` in a scope started already (a request scope, started as
    /// the request arrives; a transaction scope).
    #[cfg(any(feature = "tower", feature = "sqlx"))]
    pub(crate) fn started(scope: ActiveScope, body: F, ending: E) -> Self {
        Self::with_state(State::Running(scope), body, ending)
    }

    fn with_state(state: State<K>, body: F, ending: E) -> Self {
        Lifecycle {
            body: Body::Live { future: body },
            state,
            ending,
            cancel: E::cancel,
        }
    }
}

impl<F, E, K> Lifecycle<F, E, K> {
    /// Where the future is in its life, for `Debug`.
    pub(crate) fn stage(&self) -> &'static str {
        match &self.state {
            State::Pending(_) => "pending",
            State::Running(_) => "running",
            State::Finishing { .. } => "finishing",
            State::Done => "done",
        }
    }
}

impl<F: Future, E: Ending<F::Output, Kept = K>, K> Future for Lifecycle<F, E, K> {
    type Output = E::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<E::Output> {
        let mut this = self.project();
        loop {
            match this.state {
                State::Pending(_) => {
                    let State::Pending(settings) = std::mem::replace(this.state, State::Done)
                    else {
                        unreachable!()
                    };
                    *this.state = State::Running(settings.start());
                }
                State::Running(scope) => {
                    // A panic in the body is caught so the scope ends (as the
                    // ending decides) before the panic continues.
                    let polled = {
                        let _entered = scope.enter();
                        let body = this.body.as_mut();
                        std::panic::catch_unwind(AssertUnwindSafe(|| match body.project() {
                            BodyProj::Live { future } => future.poll(cx),
                            BodyProj::Gone => {
                                unreachable!("the body is dropped only after it completes")
                            }
                        }))
                    };
                    let (output, panic) = match polled {
                        Ok(Poll::Pending) => return Poll::Pending,
                        Ok(Poll::Ready(output)) => (Some(output), None),
                        Err(panic) => (None, Some(panic)),
                    };
                    {
                        let _entered = scope.enter();
                        this.body.set(Body::Gone);
                    }
                    let State::Running(scope) = std::mem::replace(this.state, State::Done) else {
                        unreachable!()
                    };
                    let (kept, finish) = this.ending.end(scope, output);
                    *this.state = State::Finishing {
                        finish,
                        kept,
                        panic,
                    };
                }
                State::Finishing { finish, .. } => {
                    let finished = match finish {
                        Some(work) => Some(std::task::ready!(work.as_mut().poll(cx))),
                        None => None,
                    };
                    let State::Finishing { kept, panic, .. } =
                        std::mem::replace(this.state, State::Done)
                    else {
                        unreachable!()
                    };
                    if let Some(panic) = panic {
                        if let Some(Err(error)) = finished {
                            tracing::error!(target: "airlock::scope", %error, "ending a scope after a panic failed");
                        }
                        std::panic::resume_unwind(panic);
                    }
                    let kept = kept.expect("a body that returned keeps its output");
                    return Poll::Ready(this.ending.complete(kept, finished));
                }
                State::Done => panic!("a scoped future was polled after completion"),
            }
        }
    }
}
