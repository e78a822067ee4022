//! A queue worker under the inputs and stalls a real deployment sees: tasks
//! that block, decoding code that panics, envelope fields and payloads from
//! a hostile or drifted producer, jobs whose attempts were spent by runs that
//! were cut off. Each test runs airlock's own monitor on a real SQLite file
//! and reads the verdict from the job's row.
#![cfg(feature = "apalis-sqlite")]

use std::future::Future;
use std::time::Duration;

use airlock::queue::apalis::prelude::TaskSink;
use airlock::queue::SqliteQueue;
use airlock::worker::WorkerOptions;
use airlock::Scope;
use airlock_tests::{block_until_released, echo, picky, record, release, runs, tag, Picky};

async fn queue(dir: &tempfile::TempDir) -> SqliteQueue {
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("jobs.db").display());
    SqliteQueue::connect(&url)
        .await
        .expect("the queue database opens")
}

fn options(name: &str) -> WorkerOptions {
    WorkerOptions::new(name)
        .concurrency(4)
        .poll_interval(Duration::from_millis(10))
}

/// Runs `queue`'s monitor with `options` until `done` holds (checked every
/// 10 ms), at most 20 s; says whether it held.
async fn run_until<F, Fut>(queue: &SqliteQueue, options: WorkerOptions, done: F) -> bool
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    let stop = async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut held = false;
        while tokio::time::Instant::now() < deadline {
            if done().await {
                held = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = held_tx.send(held);
        Ok(())
    };
    queue
        .monitor(options)
        .run_with_signal(stop)
        .await
        .expect("the monitor runs and stops");
    held_rx.await.unwrap_or(false)
}

/// The row of the only job of task `task`: status, attempts, last result.
async fn row(queue: &SqliteQueue, task: &str) -> (String, i64, String) {
    sqlx::query_as(
        "SELECT status, attempts, COALESCE(CAST(last_result AS TEXT), '') FROM Jobs \
         WHERE json_extract(CAST(job AS TEXT), '$.task') = ?",
    )
    .bind(task)
    .fetch_one(queue.pool())
    .await
    .expect("the job's row")
}

/// Queues `jobs` as raw apalis jobs, as another producer (or an attacker
/// with write access to the queue) could.
async fn push_raw(queue: &SqliteQueue, jobs: Vec<serde_json::Value>) {
    let mut storage = queue.storage(airlock::queue::DEFAULT_QUEUE);
    for job in jobs {
        storage.push(job).await.expect("push a raw job");
    }
}

/// Flushes `enqueue` into `queue`.
async fn flush(queue: &SqliteQueue, enqueue: impl FnOnce() -> airlock::Result<()>) {
    let scope = Scope::new().executor(queue.clone()).start();
    scope.in_scope(enqueue).expect("enqueue");
    scope
        .flush_async()
        .await
        .expect("the flush queues the jobs");
}

fn has(tag: &str, entry: &str) -> bool {
    runs(tag).iter().any(|run| run == entry)
}

#[tokio::test(flavor = "current_thread")]
async fn a_blocking_sync_task_holds_up_neither_the_other_jobs_nor_the_worker() {
    // The async `release` can only run while the sync blocker holds its
    // thread if that thread is not the worker's: on a single-threaded
    // runtime, an inline sync task stalls every job of the monitor (and its
    // heartbeat) until it returns.
    let dir = tempfile::tempdir().unwrap();
    let queue = queue(&dir).await;
    let t = tag("blocking");
    let (t1, t2) = (t.clone(), t.clone());
    flush(&queue, move || {
        block_until_released::intent(t1).priority(9).enqueue()?;
        release::enqueue(t2)?;
        Ok(())
    })
    .await;
    let seen = t.clone();
    let finished = run_until(&queue, options("blocking"), move || {
        let done = runs(&seen).len() >= 3;
        async move { done }
    })
    .await;
    assert!(finished, "both jobs finish: {:?}", runs(&t));
    assert!(
        has(&t, "blocker released") && has(&t, "release"),
        "the async job ran while the sync one blocked: {:?}",
        runs(&t)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_deserialize_aborts_the_job_once_and_the_worker_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let queue = queue(&dir).await;
    let t = tag("picky");
    let (t1, t2) = (t.clone(), t.clone());
    flush(&queue, move || {
        picky::intent(t1, Picky("panic".into()))
            .max_attempts(2)
            .priority(9)
            .enqueue()?;
        record::enqueue(t2, 7)?;
        Ok(())
    })
    .await;
    // Run well past the job's first failure: a worker that died on the
    // panic would be restarted and fetch the poison job again and again.
    let seen = t.clone();
    let start = tokio::time::Instant::now();
    let finished = run_until(&queue, options("picky"), move || {
        let done = has(&seen, "record(7)") && start.elapsed() > Duration::from_secs(2);
        async move { done }
    })
    .await;
    assert!(finished, "the other job still runs: {:?}", runs(&t));
    let (status, attempts, result) = row(&queue, "test.picky").await;
    assert_eq!(status, "Killed", "aborted, not retried: {result}");
    assert_eq!(attempts, 1, "fetched once: {result}");
    assert!(result.contains("panicked"), "says why: {result}");
    assert!(!has(&t, "picky(panic)"), "never ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_cascade_depth_is_aborted_not_overflowed_nor_retried() {
    let dir = tempfile::tempdir().unwrap();
    let queue = queue(&dir).await;
    let (huge, at_limit, ok) = (tag("depth-max"), tag("depth-32"), tag("depth-ok"));
    push_raw(
        &queue,
        vec![
            serde_json::json!({ "v": 1, "id": "a", "task": "test.echo",
                "args": { "tag": huge, "text": "x" }, "cascade_depth": u32::MAX }),
            // One level deeper than this is past the default limit of 32.
            serde_json::json!({ "v": 1, "id": "b", "task": "record",
                "args": { "tag": at_limit, "value": 1 }, "cascade_depth": 32 }),
            serde_json::json!({ "v": 1, "id": "c", "task": "test.picky",
                "args": { "tag": ok, "value": "fine" }, "cascade_depth": 31 }),
        ],
    )
    .await;
    let seen = ok.clone();
    let finished = run_until(&queue, options("depth"), move || {
        let done = has(&seen, "picky(fine)");
        async move { done }
    })
    .await;
    assert!(finished, "the job within the limit runs");
    for task in ["test.echo", "record"] {
        let (status, attempts, result) = row(&queue, task).await;
        assert_eq!(status, "Killed", "{task}: aborted, not retried: {result}");
        assert_eq!(attempts, 1, "{task}: {result}");
        assert!(result.contains("cascade"), "{task}: says why: {result}");
    }
    assert!(runs(&huge).is_empty() && runs(&at_limit).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drifted_argument_is_neither_copied_into_the_result_nor_retried() {
    // A 100 kB string where a u64 is expected: serde's error quotes the
    // whole value, and the row's result and the logs must not.
    let dir = tempfile::tempdir().unwrap();
    let queue = queue(&dir).await;
    let t = tag("drift");
    let secret = "s3cr3t-".repeat(15_000);
    push_raw(
        &queue,
        vec![serde_json::json!({ "v": 1, "id": "a", "task": "record",
            "args": { "tag": t, "value": secret } })],
    )
    .await;
    let q = queue.clone();
    let finished = run_until(&queue, options("drift"), move || {
        let q = q.clone();
        async move { row(&q, "record").await.0 == "Killed" }
    })
    .await;
    let (_, attempts, result) = row(&queue, "record").await;
    assert!(finished, "aborted: {result}");
    assert_eq!(attempts, 1);
    assert!(result.len() < 2_048, "{} bytes of result", result.len());
    assert!(result.contains("expected u64"), "says why: {result}");
    assert!(
        result.matches("s3cr3t-").count() < 20,
        "a short prefix of the value at most: {result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_payload_is_refused_by_the_producer_and_aborted_unread_by_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let queue = queue(&dir).await;
    let t = tag("oversized");
    let big = "x".repeat(airlock::DEFAULT_MAX_PAYLOAD_BYTES + 1);

    // The producer: the flush fails before anything is queued.
    let scope = Scope::new().executor(queue.clone()).start();
    let (t1, text) = (t.clone(), big.clone());
    scope
        .in_scope(move || echo::enqueue(t1, text))
        .expect("enqueue");
    let error = scope.flush_async().await.expect_err("too large to queue");
    assert!(
        error.to_string().contains("max_payload_bytes"),
        "names the limit: {error}"
    );
    let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM Jobs")
        .fetch_one(queue.pool())
        .await
        .unwrap();
    assert_eq!(queued, 0, "nothing was queued");

    // A worker meets one anyway (another producer wrote it).
    push_raw(
        &queue,
        vec![serde_json::json!({ "v": 1, "id": "a", "task": "test.echo",
            "args": { "tag": t, "text": big } })],
    )
    .await;
    let q = queue.clone();
    let finished = run_until(&queue, options("oversized"), move || {
        let q = q.clone();
        async move { row(&q, "test.echo").await.0 == "Killed" }
    })
    .await;
    let (_, attempts, result) = row(&queue, "test.echo").await;
    assert!(finished, "aborted: {result}");
    assert_eq!(attempts, 1);
    assert!(result.contains("max_payload_bytes"), "says why: {result}");
    assert!(result.len() < 2_048, "{} bytes of result", result.len());
    assert!(runs(&t).is_empty(), "never ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_handed_out_past_its_attempts_runs_once_more_and_a_failure_ends_it() {
    // apalis counts an attempt each time it hands a job out again after a
    // run that never reported back (a worker that died, or shut down with
    // the job fetched but never started), and never checks max_attempts
    // then. Whether those runs started is unknown, so the job must run once
    // more (or an effect that never ran is lost), and a failure ends it.
    let dir = tempfile::tempdir().unwrap();
    let queue = queue(&dir).await;
    let (spent, failing) = (tag("spent"), tag("spent-failing"));
    let (t1, t2) = (spent.clone(), failing.clone());
    flush(&queue, move || {
        record::intent(t1, 1).max_attempts(2).enqueue()?;
        airlock_tests::fail::intent(t2).max_attempts(2).enqueue()?;
        Ok(())
    })
    .await;
    sqlx::query("UPDATE Jobs SET attempts = 2")
        .execute(queue.pool())
        .await
        .unwrap();
    let q = queue.clone();
    let finished = run_until(&queue, options("spent"), move || {
        let q = q.clone();
        async move { row(&q, "record").await.0 == "Done" && row(&q, "fail").await.0 == "Killed" }
    })
    .await;
    let (_, _, result) = row(&queue, "fail").await;
    assert!(finished, "{result}");
    assert_eq!(runs(&spent), ["record(1)"], "not lost");
    assert_eq!(runs(&failing), ["fail"], "ran once more, then ended");
    assert!(result.contains("attempts are exhausted"), "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orphan_window_is_set_by_worker_options() {
    // A job claimed by a worker that fell silent 5 s ago: orphaned under a
    // 1 s × 2 window, still alive under apalis-sqlite's 30 s × 2.
    let dir = tempfile::tempdir().unwrap();
    let queue = queue(&dir).await;
    let t = tag("orphan");
    let t1 = t.clone();
    flush(&queue, move || record::enqueue(t1, 5).map(drop)).await;
    sqlx::query(
        "INSERT INTO Workers (id, worker_type, storage_name, layers, last_seen, started_at) \
         VALUES ('gone', ?, 'SqliteStorage', '', strftime('%s','now') - 5, strftime('%s','now') - 60)",
    )
    .bind(airlock::queue::DEFAULT_QUEUE)
    .execute(queue.pool())
    .await
    .unwrap();
    sqlx::query(
        "UPDATE Jobs SET status = 'Running', lock_by = 'gone', lock_at = strftime('%s','now') - 5",
    )
    .execute(queue.pool())
    .await
    .unwrap();
    let options = options("orphan")
        .heartbeat(Duration::from_secs(1))
        .missed_heartbeats(2);
    assert_eq!(options.orphan_window(), Some(Duration::from_secs(2)));
    let seen = t.clone();
    let finished = run_until(&queue, options, move || {
        let done = has(&seen, "record(5)");
        async move { done }
    })
    .await;
    assert!(finished, "the orphaned job was re-run within the window");
    let (status, attempts, _) = row(&queue, "record").await;
    assert_eq!(status, "Done");
    assert_eq!(attempts, 2, "the cut-off run counts as an attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_keeps_failing_is_restarted_with_backoff_not_in_a_tight_loop() {
    // Every fetch fails (a column the fetch orders by is gone; registering
    // still works): each failure stops the worker and the monitor restarts
    // it under a new name, registering a new worker row each time.
    let dir = tempfile::tempdir().unwrap();
    let queue = queue(&dir).await;
    sqlx::query("ALTER TABLE Jobs RENAME COLUMN priority TO broken_priority")
        .execute(queue.pool())
        .await
        .unwrap();
    let watched = Duration::from_secs(3);
    let _ = queue
        .monitor(options("failing"))
        .run_with_signal(async move {
            tokio::time::sleep(watched).await;
            Ok(())
        })
        .await;
    let registrations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM Workers")
        .fetch_one(queue.pool())
        .await
        .unwrap();
    eprintln!("worker registrations in {watched:?} of failing fetches: {registrations}");
    assert!(
        registrations >= 2,
        "the worker was restarted: {registrations}"
    );
    // Backoff from 100 ms, doubling: about six starts in three seconds.
    assert!(
        registrations <= 12,
        "{registrations} restarts in {watched:?}: restarted in a tight loop"
    );
}

#[test]
fn every_worker_log_line_names_the_job_its_attempt_and_its_task() {
    // A subscriber for this thread only: the worker runs on this thread's
    // current-thread runtime, sync tasks on the blocking pool under the
    // job's span.
    let sink = airlock_tests::logs::LogSink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let dispatch = tracing::Dispatch::new(subscriber);
    let t = tag("job-span");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let queue = queue(&dir).await;
            let t1 = t.clone();
            flush(&queue, move || airlock_tests::fail::enqueue(t1).map(drop)).await;
            let seen = t.clone();
            run_until(&queue, options("job-span"), move || {
                let done = !runs(&seen).is_empty();
                async move { done }
            })
            .await;
        })
    });
    let log = sink.text();
    let failed = log
        .lines()
        .find(|line| line.contains("task failed"))
        .unwrap_or_else(|| panic!("no `task failed` line in:\n{log}"));
    assert!(failed.contains("airlock.job{job_id="), "{failed}");
    assert!(failed.contains("attempt=1"), "{failed}");
    assert!(failed.contains("task=\"fail\""), "{failed}");
}
