//! Two fixes every airlock worker puts around an apalis storage, each for a
//! way apalis 1.0 stops consuming a queue:
//!
//! ```text
//! storage.with_codec(LenientJson).poll_with_strategy(PollEvery::new(interval))
//! ```
//!
//! The PostgreSQL monitor uses them; `SqliteQueue::monitor` meets the same two
//! problems and should use them too.

use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{Codec, IntervalStrategy, PollSnapshot, PollStrategy};

/// apalis's JSON codec for job payloads, except that bytes which are not JSON
/// decode to a JSON string saying so instead of an error.
///
/// With apalis's own codec a decoding error is a *backend* error: the worker
/// stops, and the rows it claimed in that fetch stay `Queued` under its name
/// forever (the restarted worker keeps the name and its heartbeat, so orphan
/// recovery never frees them). Here the handler gets a value that is no
/// envelope and aborts just that job (`Killed`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LenientJson;

impl Codec<serde_json::Value> for LenientJson {
    type Error = serde_json::Error;
    type Compact = Vec<u8>;

    fn encode(&self, value: &serde_json::Value) -> Result<Vec<u8>, Self::Error> {
        serde_json::to_vec(value)
    }

    fn decode(&self, bytes: &Vec<u8>) -> Result<serde_json::Value, Self::Error> {
        Ok(serde_json::from_slice(bytes).unwrap_or_else(|error| {
            tracing::error!(
                target: "airlock::worker",
                %error,
                "a job's payload is not JSON; it will be aborted"
            );
            serde_json::Value::String(format!("the job's payload is not JSON: {error}"))
        }))
    }
}

/// apalis's `IntervalStrategy` (wake an idle worker every `interval`), with
/// its next tick armed for real.
///
/// When its timer fires, apalis's strategy replaces it with a new one it does
/// not poll, so nothing will wake the worker for it. If the fetch that follows
/// finds the queue empty without waiting on the database, the worker sleeps
/// until its 30 s heartbeat: seen on PostgreSQL as a job that sat `Pending`
/// for 30 s while its worker idled. Polling the new timer at once registers
/// the wake-up.
#[derive(Debug, Clone)]
pub(crate) struct PollEvery(IntervalStrategy);

impl PollEvery {
    pub(crate) fn new(interval: Duration) -> Self {
        PollEvery(IntervalStrategy::new(interval))
    }
}

impl PollStrategy for PollEvery {
    fn poll_drive(&mut self, cx: &mut Context<'_>, snapshot: &PollSnapshot) -> Poll<Option<()>> {
        let fired = self.0.poll_drive(cx, snapshot);
        if fired.is_ready() && self.0.poll_drive(cx, snapshot).is_ready() {
            // The next tick is due already (a zero interval): come back soon.
            cx.waker().wake_by_ref();
        }
        fired
    }
}
