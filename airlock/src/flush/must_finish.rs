//! Flushes that must finish once they started: after a request succeeded,
//! after a transaction committed.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::Error;
use crate::flush::FlushReport;
use crate::task::BoxFuture;

/// A flush (or a commit and its flush) that runs to the end even if whoever
/// awaits it stops: dropped unfinished, it hands the rest of its work to the
/// tokio runtime, which finishes it in the background and logs a failure.
///
/// Past the point of no return (the handler returned success, `COMMIT` was
/// sent) the caller going away (a client disconnect, a timeout) must not
/// decide the intents' fate: they would be interrupted though their scope
/// succeeded.
pub(crate) struct MustFinish {
    work: Option<BoxFuture<'static, Result<FlushReport, Error>>>,
    what: &'static str,
}

impl MustFinish {
    /// `work`, described as `what` in the logs.
    pub(crate) fn new(
        work: BoxFuture<'static, Result<FlushReport, Error>>,
        what: &'static str,
    ) -> Self {
        MustFinish {
            work: Some(work),
            what,
        }
    }
}

impl Future for MustFinish {
    type Output = Result<FlushReport, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let work = self.work.as_mut().expect("polled after completion");
        let output = std::task::ready!(work.as_mut().poll(cx));
        self.work = None;
        Poll::Ready(output)
    }
}

impl Drop for MustFinish {
    fn drop(&mut self) {
        let Some(work) = self.work.take() else {
            return;
        };
        let what = self.what;
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                tracing::debug!(target: "airlock::flush", what, "dropped unfinished; finishing in the background");
                let background = runtime.spawn(async move {
                    if let Err(error) = work.await {
                        tracing::error!(target: "airlock::flush", what, %error, "finishing in the background failed");
                    }
                });
                // A runtime that is shutting down drops a new task at once,
                // unrun (pending I/O cannot finish that fast otherwise): say
                // so, since the work is then lost.
                if background.is_finished() {
                    tracing::error!(
                        target: "airlock::flush",
                        what,
                        "dropped unfinished, and the background task ended at once: the tokio \
                         runtime is probably shutting down, so its remaining intents are \
                         interrupted"
                    );
                }
            }
            Err(_) => tracing::error!(
                target: "airlock::flush",
                what,
                "dropped unfinished outside a tokio runtime: it cannot be finished, and its \
                 remaining intents are interrupted"
            ),
        }
    }
}

impl std::fmt::Debug for MustFinish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MustFinish")
            .field("what", &self.what)
            .field("finished", &self.work.is_none())
            .finish()
    }
}
