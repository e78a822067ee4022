//! Executor faults on the SQLite queue, whose flush is one transaction in a
//! file: the file locked by another connection (for longer than the busy
//! timeout, and briefly), the database opened read-only, the pool closed,
//! one row of the batch refused part-way, and a flush the caller times out
//! while it waits for the lock. Each test then reads the `Jobs` table on a
//! connection of its own and checks the report against it:
//! * every intent reported `Dispatched` is in the table exactly once;
//! * every intent reported `NotAttempted` is not, and is handed back in
//!   `not_attempted`, in order, and nothing else is;
//! * the batch is all or nothing;
//! * a retry of what was handed back leaves each intent in the table once.
#![cfg(feature = "apalis-sqlite")]

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use airlock::queue::SqliteQueue;
use airlock::DispatchFailure;
use airlock_tests::flush_plan::*;
use airlock_tests::tag;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Connection as _, SqliteConnection};

fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("jobs.db").display())
}

/// A queue on the file in `dir` (created if missing) whose connections wait
/// `busy` for a lock another connection holds.
async fn queue(dir: &tempfile::TempDir, busy: Duration) -> SqliteQueue {
    let options = SqliteConnectOptions::from_str(&url(dir))
        .expect("a SQLite URL")
        .create_if_missing(true)
        .busy_timeout(busy);
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .expect("the queue database opens");
    SqliteQueue::new(pool).await.expect("the queue sets up")
}

/// Another connection to the same file.
async fn other(dir: &tempfile::TempDir) -> SqliteConnection {
    SqliteConnection::connect(&url(dir))
        .await
        .expect("a second connection")
}

/// The values of `tag`'s jobs in each queue, sorted.
async fn held(dir: &tempfile::TempDir, tag: &str) -> BTreeMap<String, Vec<u64>> {
    let mut conn = other(dir).await;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT job_type, json_extract(CAST(job AS TEXT), '$.args.value') FROM Jobs \
         WHERE json_extract(CAST(job AS TEXT), '$.args.tag') = ?",
    )
    .bind(tag)
    .fetch_all(&mut conn)
    .await
    .expect("read the jobs");
    let _ = conn.close().await;
    let mut out: BTreeMap<String, Vec<u64>> =
        PLAN.iter().map(|q| ((*q).to_owned(), Vec::new())).collect();
    for (queue, value) in rows {
        out.entry(queue).or_default().push(value as u64);
    }
    out.values_mut().for_each(|v| v.sort_unstable());
    out
}

/// Checks a flush that failed with nothing queued: every intent not
/// attempted, handed back in order, and absent from the table.
fn check_nothing_queued(failure: &DispatchFailure, held: &BTreeMap<String, Vec<u64>>) {
    assert_eq!(
        fates(failure.report.records()),
        ["not attempted"; 5],
        "{failure}"
    );
    check_report(failure.report.records(), held);
    assert_eq!(values(&failure.not_attempted), [1, 2, 3, 4, 5], "{failure}");
    assert!(failure.in_doubt.is_empty(), "{failure}");
    assert!(held.values().all(Vec::is_empty), "{held:?}");
}

/// Takes the file's write lock on a connection of its own (`BEGIN
/// IMMEDIATE`); `COMMIT` on it releases the lock.
async fn lock(dir: &tempfile::TempDir) -> SqliteConnection {
    let mut holder = other(dir).await;
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .expect("take the write lock");
    holder
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_locked_past_the_busy_timeout_queues_nothing_and_hands_every_intent_back() {
    let dir = tempfile::tempdir().unwrap();
    let queue = queue(&dir, Duration::from_millis(200)).await;
    let t = tag("sqlite-locked");
    let mut holder = lock(&dir).await;
    let failure = expect_failure(planned(&queue, &t).flush_async().await);
    assert!(
        failure.source.to_string().contains("locked"),
        "{}",
        failure.source
    );
    sqlx::raw_sql("COMMIT")
        .execute(&mut holder)
        .await
        .expect("release the lock");
    check_nothing_queued(&failure, &held(&dir, &t).await);
    retry(&queue, failure.not_attempted).await;
    assert_eq!(held(&dir, &t).await, everything_once());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_locked_briefly_is_waited_for_and_everything_is_dispatched_late() {
    let dir = tempfile::tempdir().unwrap();
    let queue = queue(&dir, Duration::from_secs(10)).await;
    let t = tag("sqlite-busy");
    let mut holder = lock(&dir).await;
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        sqlx::raw_sql("COMMIT")
            .execute(&mut holder)
            .await
            .expect("release the lock");
    });
    let report = planned(&queue, &t)
        .flush_async()
        .await
        .expect("the flush waits for the lock");
    release.await.unwrap();
    assert_eq!(report.dispatched(), ["record"; 5]);
    let held_now = held(&dir, &t).await;
    check_report(report.records(), &held_now);
    assert_eq!(held_now, everything_once());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_queues_nothing_and_hands_every_intent_back() {
    let dir = tempfile::tempdir().unwrap();
    let writable = queue(&dir, Duration::from_secs(5)).await;
    let read_only = {
        let options = SqliteConnectOptions::from_str(&url(&dir))
            .expect("a SQLite URL")
            .read_only(true);
        let pool = SqlitePoolOptions::new()
            .connect_with(options)
            .await
            .expect("open read-only");
        SqliteQueue::new(pool)
            .await
            .expect("a migrated file opens read-only")
    };
    let t = tag("sqlite-read-only");
    let failure = expect_failure(planned(&read_only, &t).flush_async().await);
    assert!(
        failure.source.to_string().contains("readonly"),
        "{}",
        failure.source
    );
    check_nothing_queued(&failure, &held(&dir, &t).await);
    retry(&writable, failure.not_attempted).await;
    assert_eq!(held(&dir, &t).await, everything_once());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pool_queues_nothing_and_hands_every_intent_back() {
    let dir = tempfile::tempdir().unwrap();
    let queue = queue(&dir, Duration::from_secs(5)).await;
    let t = tag("sqlite-closed");
    queue.pool().close().await;
    let failure = expect_failure(planned(&queue, &t).flush_async().await);
    assert!(
        failure.source.to_string().contains("closed"),
        "{}",
        failure.source
    );
    check_nothing_queued(&failure, &held(&dir, &t).await);
    let reopened = self::queue(&dir, Duration::from_secs(5)).await;
    retry(&reopened, failure.not_attempted).await;
    assert_eq!(held(&dir, &t).await, everything_once());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_refused_mid_batch_rolls_back_the_whole_flush() {
    let dir = tempfile::tempdir().unwrap();
    let queue = queue(&dir, Duration::from_secs(5)).await;
    let t = tag("sqlite-refused");
    // The second queue's INSERT fails once the first queue's rows are in the
    // transaction.
    sqlx::raw_sql(
        "CREATE TRIGGER refuse_second BEFORE INSERT ON Jobs WHEN NEW.job_type = 'second' \
         BEGIN SELECT RAISE(ABORT, 'refused on purpose'); END;",
    )
    .execute(queue.pool())
    .await
    .unwrap();
    let failure = expect_failure(planned(&queue, &t).flush_async().await);
    assert!(
        failure.source.to_string().contains("refused on purpose"),
        "{}",
        failure.source
    );
    check_nothing_queued(&failure, &held(&dir, &t).await);
    sqlx::raw_sql("DROP TRIGGER refuse_second")
        .execute(queue.pool())
        .await
        .unwrap();
    retry(&queue, failure.not_attempted).await;
    assert_eq!(held(&dir, &t).await, everything_once());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_the_caller_times_out_waiting_for_the_lock_is_interrupted_never_dispatched() {
    let dir = tempfile::tempdir().unwrap();
    let queue = queue(&dir, Duration::from_secs(10)).await;
    let t = tag("sqlite-caller-timeout");
    let mut holder = lock(&dir).await;
    let scope = planned(&queue, &t);
    let handle = scope.handle();
    let timed_out = tokio::time::timeout(Duration::from_millis(200), scope.flush_async()).await;
    assert!(
        timed_out.is_err(),
        "the flush was still waiting for the lock"
    );
    sqlx::raw_sql("COMMIT")
        .execute(&mut holder)
        .await
        .expect("release the lock");
    let records = handle.records();
    assert_eq!(fates(&records), ["interrupted"; 5]);
    let held_now = held(&dir, &t).await;
    check_report(&records, &held_now);
    assert!(
        held_now.values().all(Vec::is_empty),
        "the abandoned transaction never got the lock: {held_now:?}"
    );
    // The queue's connections are fine afterwards.
    let t2 = tag("sqlite-after-timeout");
    let report = planned(&queue, &t2).flush_async().await.unwrap();
    assert_eq!(report.dispatched(), ["record"; 5]);
    assert_eq!(held(&dir, &t2).await, everything_once());
}
