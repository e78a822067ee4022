//! Dispatch through the embedded apalis SQLite queue, and workers that run
//! jobs by task name. Real SQLite files in a temporary directory.
#![cfg(feature = "apalis-sqlite")]

use std::future::Future;
use std::time::Duration;

use airlock::envelope::Envelope;
use airlock::queue::apalis::prelude::{BackendExt, TaskSink, WorkerBuilder};
use airlock::queue::SqliteQueue;
use airlock::{DropAll, Error, Scope};
use airlock_tests::{fail, record, runs, tag, AppError};

async fn queue(dir: &tempfile::TempDir) -> SqliteQueue {
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("jobs.db").display());
    SqliteQueue::connect(&url)
        .await
        .expect("the queue database opens")
}

/// How many jobs the queue holds in `status`.
async fn count(queue: &SqliteQueue, status: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM Jobs WHERE status = ?")
        .bind(status)
        .fetch_one(queue.pool())
        .await
        .expect("count jobs")
}

/// How many jobs the queue holds at all.
async fn total(queue: &SqliteQueue) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM Jobs")
        .fetch_one(queue.pool())
        .await
        .expect("count jobs")
}

/// Runs one worker until `done` holds (checked every 20 ms), at most 20 s.
async fn work_until<F, Fut>(queue: &SqliteQueue, name: &str, done: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let storage = queue
        .storage("airlock")
        .poll_with_interval(Duration::from_millis(20));
    let worker = WorkerBuilder::new(name)
        .backend(storage)
        .build(airlock::worker::handle);
    let stop = async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !done().await && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok::<(), std::io::Error>(())
    };
    worker.run_until(stop).await.expect("the worker runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_queues_every_intent_and_a_worker_runs_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let queue = queue(&dir).await;
    let t = tag("sqlite-flush");
    let report = Scope::new().executor(queue.clone()).start();
    report
        .in_scope(|| -> airlock::Result<()> {
            record::enqueue(t.clone(), 1)?;
            record::enqueue(t.clone(), 2)?;
            Ok(())
        })
        .unwrap();
    let report = report.flush_async().await.unwrap();
    assert_eq!(report.dispatched(), ["record", "record"]);
    assert!(runs(&t).is_empty(), "queued, not run in process");
    assert_eq!(count(&queue, "Pending").await, 2);

    let seen = t.clone();
    work_until(&queue, "airlock-test-1", move || {
        let done = runs(&seen).len() >= 2;
        async move { done }
    })
    .await;
    let mut ran = runs(&t);
    ran.sort();
    assert_eq!(ran, ["record(1)", "record(2)"]);
    assert_eq!(count(&queue, "Done").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_row_holds_its_intents_envelope_under_the_rows_own_id() {
    // What the executor writes, read back from the table: the envelope, in the
    // very bytes the owned `Envelope` writes (nothing added, nothing left
    // out), whose id is the row's apalis id, and whose options are mirrored
    // into the row's columns.
    let dir = tempfile::tempdir().unwrap();
    let queue = queue(&dir).await;
    let t = tag("sqlite-rows");
    let scope = Scope::new().executor(queue.clone()).start();
    scope
        .in_scope(|| -> airlock::Result<()> {
            record::enqueue(t.clone(), 1)?;
            record::intent(t.clone(), 2)
                .max_attempts(2)
                .priority(4)
                .enqueue()?;
            Ok(())
        })
        .unwrap();
    let report = scope.flush_async().await.unwrap();
    let origins: Vec<_> = report
        .records()
        .iter()
        .map(|r| r.origin.to_string())
        .collect();

    let rows: Vec<(String, Vec<u8>, i64, i64)> =
        sqlx::query_as("SELECT id, job, max_attempts, priority FROM Jobs ORDER BY priority")
            .fetch_all(queue.pool())
            .await
            .unwrap();
    let expected = [
        (1, airlock::queue::DEFAULT_MAX_ATTEMPTS as i64, 0),
        (2, 2, 4),
    ];
    assert_eq!(rows.len(), expected.len());
    for ((id, job, max_attempts, priority), ((value, attempts, prio), origin)) in
        rows.iter().zip(expected.iter().zip(&origins))
    {
        let envelope = Envelope::from_json(job).unwrap();
        assert_eq!(
            &envelope.to_json().unwrap(),
            job,
            "{}",
            String::from_utf8_lossy(job)
        );
        assert_eq!(&envelope.id, id, "the envelope's id is the row's");
        assert_eq!(
            envelope.args,
            serde_json::json!({ "tag": t, "value": value })
        );
        assert_eq!(envelope.origin.as_ref(), Some(origin));
        assert_eq!((*max_attempts, *priority), (*attempts, *prio));
        let intent = airlock::worker::decode_job(job).expect("a worker reads the row");
        assert_eq!(intent.args::<record>().unwrap().value, *value);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_or_dry_run_scope_queues_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let queue = queue(&dir).await;
    let t = tag("sqlite-discard");
    let failed: Result<(), AppError> = Scope::new()
        .executor(queue.clone())
        .run_async(async {
            record::enqueue(t.clone(), 1)?;
            Err(AppError::Failed("the handler failed".into()))
        })
        .await;
    assert!(failed.is_err());
    Scope::new()
        .executor(queue.clone())
        .policy(DropAll)
        .run_async(async { record::enqueue(t.clone(), 2).map(drop) })
        .await
        .unwrap();
    assert_eq!(total(&queue).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_that_can_never_succeed_are_aborted_and_the_worker_keeps_going() {
    let dir = tempfile::tempdir().unwrap();
    let queue = queue(&dir).await;
    let t = tag("sqlite-bad");
    let mut storage = queue.storage("airlock");
    // Not an envelope, an unknown task, and arguments that do not decode.
    storage
        .push(serde_json::json!({ "hello": "world" }))
        .await
        .unwrap();
    storage
        .push(serde_json::json!({ "v": 1, "id": "x", "task": "no_such_task", "args": {} }))
        .await
        .unwrap();
    storage
        .push(serde_json::json!({ "v": 1, "id": "y", "task": "record", "args": { "tag": 1 } }))
        .await
        .unwrap();
    // A good job queued after them still runs.
    Scope::new()
        .executor(queue.clone())
        .run_async(async { record::enqueue(t.clone(), 7).map(drop) })
        .await
        .unwrap();

    let (seen, watched) = (t.clone(), queue.clone());
    work_until(&queue, "airlock-test-2", move || {
        let ran = !runs(&seen).is_empty();
        let queue = watched.clone();
        async move { ran && count(&queue, "Killed").await == 3 }
    })
    .await;
    assert_eq!(runs(&t), ["record(7)"]);
    assert_eq!(
        count(&queue, "Killed").await,
        3,
        "bad jobs are aborted, not retried"
    );
    assert_eq!(count(&queue, "Done").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_always_fails_runs_exactly_max_attempts_times() {
    let dir = tempfile::tempdir().unwrap();
    let queue = queue(&dir).await;
    let t = tag("sqlite-fail");
    Scope::new()
        .executor(queue.clone())
        .run_async(async { fail::intent(t.clone()).max_attempts(2).enqueue().map(drop) })
        .await
        .unwrap();
    let watched = queue.clone();
    work_until(&queue, "airlock-test-4", move || {
        let queue = watched.clone();
        async move { count(&queue, "Killed").await == 1 }
    })
    .await;
    // The failure on the last attempt kills the job (the worker enforces
    // max_attempts the same way on every backend), so it is never fetched again.
    assert_eq!(runs(&t), ["fail", "fail"], "attempted max_attempts times");
    let (attempts, result): (i64, String) =
        sqlx::query_as("SELECT attempts, last_result FROM Jobs WHERE status = 'Killed'")
            .fetch_one(queue.pool())
            .await
            .expect("the killed job");
    assert_eq!(attempts, 2);
    assert!(
        result.contains("attempts are exhausted"),
        "the job says why it stopped: {result}"
    );
    assert_eq!(count(&queue, "Failed").await, 0);
    assert_eq!(total(&queue).await, 1);
}

#[test]
fn a_sync_scope_cannot_push_and_hands_every_intent_back() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let queue = runtime.block_on(queue(&dir));
    let t = tag("sqlite-sync");
    let result: airlock::Result<()> = Scope::new().executor(queue).run(|| {
        record::enqueue(t.clone(), 1)?;
        Ok(())
    });
    let Err(Error::Dispatch(failure)) = result else {
        panic!("expected a dispatch failure, got {result:?}");
    };
    assert_eq!(failure.not_attempted.len(), 1);
    assert!(failure.to_string().contains("async scope"), "{failure}");
}
