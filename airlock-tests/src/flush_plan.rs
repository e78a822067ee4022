//! The executor-fault suites' shared flush plan: five `record` intents over
//! three queues, and the checks of a flush's report against what the broker
//! really holds afterwards.

use std::collections::BTreeMap;

use airlock::{
    ActiveScope, DispatchFailure, Error, Executor, Fate, FlushReport, Intent, IntentRecord, Scope,
};

use crate::record;

/// The queue of each intent, in order; intent `i` is `record(tag, i + 1)`.
/// Three runs of same-queue intents: three Redis pushes, three `INSERT`s.
pub const PLAN: [&str; 5] = ["first", "first", "second", "third", "third"];

/// What a broker holds of one tag: the values of its jobs by queue, sorted.
pub type Held = BTreeMap<String, Vec<u64>>;

/// A scope dispatching with `executor` that holds the plan's intents, not
/// flushed yet.
pub fn planned<E: Executor + Clone>(executor: &E, tag: &str) -> ActiveScope {
    let scope = Scope::new().executor(executor.clone()).start();
    scope
        .in_scope(|| -> airlock::Result<()> {
            for (i, q) in PLAN.iter().enumerate() {
                record::intent(tag.to_owned(), i as u64 + 1)
                    .queue(*q)
                    .enqueue()?;
            }
            Ok(())
        })
        .expect("enqueue");
    scope
}

/// One word per record: what the report says became of each intent.
pub fn fates(records: &[IntentRecord]) -> Vec<&'static str> {
    records
        .iter()
        .map(|r| match &r.fate {
            Fate::Dispatched => "dispatched",
            Fate::NotAttempted => "not attempted",
            Fate::Interrupted => "interrupted",
            Fate::Failed { .. } => "failed",
            other => panic!("unexpected fate after a flush: {other:?}"),
        })
        .collect()
}

/// The values of handed-back `record` intents, in order.
pub fn values(intents: &[Intent]) -> Vec<u64> {
    intents
        .iter()
        .map(|i| i.args::<record>().expect("record args").value)
        .collect()
}

/// Checks the report against what the broker holds: dispatched means there
/// once, not attempted or failed means absent. Returns the values reported
/// interrupted (either may be true of them).
pub fn check_report(records: &[IntentRecord], held: &Held) -> Vec<u64> {
    assert_eq!(records.len(), PLAN.len());
    let mut interrupted = Vec::new();
    for (i, (record, queue)) in records.iter().zip(PLAN).enumerate() {
        let value = i as u64 + 1;
        let copies = held[queue].iter().filter(|v| **v == value).count();
        match record.fate {
            Fate::Dispatched => assert_eq!(
                copies, 1,
                "intent {value} is reported dispatched, so the broker holds it once: {held:?}"
            ),
            Fate::NotAttempted | Fate::Failed { .. } => assert_eq!(
                copies, 0,
                "intent {value} is reported {:?}, so the broker does not hold it: {held:?}",
                record.fate
            ),
            Fate::Interrupted => interrupted.push(value),
            ref other => panic!("unexpected fate {other:?}"),
        }
    }
    interrupted
}

/// Checks a failed flush: the report against the broker, and that
/// `not_attempted` and `in_doubt` hand back exactly the intents reported not
/// attempted and interrupted, in order.
pub fn check_failure(failure: &DispatchFailure, held: &Held) {
    let records = &failure.report.records();
    let interrupted = check_report(records, held);
    let not_attempted: Vec<u64> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r.fate, Fate::NotAttempted))
        .map(|(i, _)| i as u64 + 1)
        .collect();
    assert_eq!(
        values(&failure.not_attempted),
        not_attempted,
        "exactly the intents reported not attempted are handed back: {failure}"
    );
    assert_eq!(
        values(&failure.in_doubt),
        interrupted,
        "exactly the intents reported interrupted are handed back as in doubt: {failure}"
    );
}

/// Every value of the plan, once, by queue.
pub fn everything_once() -> Held {
    let mut out = Held::new();
    for (i, q) in PLAN.iter().enumerate() {
        out.entry((*q).to_owned()).or_default().push(i as u64 + 1);
    }
    out
}

/// Whether the broker holds all of the plan's jobs once, or none.
pub fn all_or_nothing(held: &Held) -> bool {
    held.values().all(Vec::is_empty) || *held == everything_once()
}

/// Flushes `intents` again in a scope of their own (a retry).
pub async fn retry<E: Executor + Clone>(executor: &E, intents: Vec<Intent>) -> FlushReport {
    let scope = Scope::new().executor(executor.clone()).start();
    scope.in_scope(|| {
        for intent in intents {
            airlock::enqueue(intent).expect("re-enqueue");
        }
    });
    scope.flush_async().await.expect("the retry dispatches")
}

/// The dispatch failure a flush must have ended in.
pub fn expect_failure(result: Result<FlushReport, Error>) -> DispatchFailure {
    match result {
        Err(Error::Dispatch(failure)) => *failure,
        other => panic!("expected a dispatch failure, got {other:?}"),
    }
}

/// Runs a worker (started by `monitor`) on each queue of the plan until
/// `tag`'s five jobs ran, and checks each ran exactly once.
#[cfg(any(
    feature = "apalis-sqlite",
    feature = "apalis-postgres",
    feature = "apalis-redis"
))]
pub async fn work_every_queue(
    monitor: impl Fn(airlock::worker::WorkerOptions) -> airlock::queue::apalis::prelude::Monitor,
    tag: &str,
) {
    use std::time::Duration;
    for q in ["first", "second", "third"] {
        let expected = everything_once()[q].len();
        let seen = tag.to_owned();
        let before = crate::runs(tag).len();
        let stop = async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while crate::runs(&seen).len() < before + expected
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok::<(), std::io::Error>(())
        };
        monitor(
            airlock::worker::WorkerOptions::new(format!("faults-{q}"))
                .queue(q)
                .poll_interval(Duration::from_millis(20)),
        )
        .run_with_signal(stop)
        .await
        .expect("the worker runs and stops");
    }
    let mut ran = crate::runs(tag);
    ran.sort();
    assert_eq!(
        ran,
        (1..=5).map(|v| format!("record({v})")).collect::<Vec<_>>(),
        "each job ran exactly once"
    );
}
