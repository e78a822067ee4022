//! `delay` and `run_at` as ordinary code writes them, extremes included: a
//! schedule no queue can store is a typed error (never a panic inside the
//! queue engine), and every executor either honours a schedule or refuses
//! it loudly, never drops it.

use std::time::{Duration, UNIX_EPOCH};

use airlock::{Error, Scope};
use airlock_tests::{record, runs, tag};

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

#[test]
fn a_schedule_past_the_year_9999_is_a_typed_error_at_enqueue() {
    let t = tag("schedule-far");
    let scope = Scope::new().start();
    for (what, result) in [
        (
            "Duration::MAX",
            scope.in_scope(|| record::intent(t.clone(), 1).delay(Duration::MAX).enqueue()),
        ),
        (
            "10,000 years",
            scope.in_scope(|| record::intent(t.clone(), 2).delay(YEAR * 10_000).enqueue()),
        ),
        (
            "run_at in the year 20000",
            scope.in_scope(|| {
                record::intent(t.clone(), 3)
                    .run_at(UNIX_EPOCH + YEAR * 18_030)
                    .enqueue()
            }),
        ),
    ] {
        match result {
            Err(Error::Schedule(airlock::ScheduleError { task, reason })) => {
                assert_eq!(task, "record", "{what}");
                assert!(reason.contains("9999"), "{what}: {reason}");
            }
            other => panic!("{what}: expected a schedule error, got {other:?}"),
        }
    }
    assert!(scope.intents().is_empty(), "nothing was buffered");
}

#[test]
fn in_process_refuses_a_flush_with_a_scheduled_intent_and_runs_none_of_it() {
    let t = tag("schedule-in-process");
    let result = airlock::scope(|| -> airlock::Result<()> {
        record::enqueue(t.clone(), 1)?;
        record::intent(t.clone(), 2)
            .delay(Duration::from_secs(60))
            .enqueue()?;
        Ok(())
    });
    let error = result.expect_err("the flush is refused").to_string();
    assert!(error.contains("cannot run `record` later"), "{error}");
    assert!(runs(&t).is_empty(), "not even the unscheduled intent ran");

    // A `run_at` already past (before 1970, even) means at once.
    let t = tag("schedule-past");
    airlock::scope(|| {
        record::intent(t.clone(), 3)
            .run_at(UNIX_EPOCH - YEAR)
            .enqueue()
    })
    .expect("a past run_at runs at once");
    assert_eq!(runs(&t), ["record(3)"]);
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_tokio_executor_runs_a_delayed_intent_when_it_is_due() {
    use airlock::executor::TokioExecutor;
    use std::time::SystemTime;

    let t = tag("schedule-tokio");
    let executor = TokioExecutor::new();
    Scope::new()
        .executor(executor.clone())
        .run_async(async {
            record::intent(t.clone(), 1)
                .delay(Duration::from_secs(3600))
                .enqueue()?;
            record::intent(t.clone(), 2)
                .run_at(SystemTime::now() + Duration::from_secs(7200))
                .enqueue()?;
            record::enqueue(t.clone(), 3)
        })
        .await
        .unwrap();
    // Paused time: only `advance` moves the clock tokio's timers read.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(runs(&t), ["record(3)"], "the scheduled ones wait");
    assert_eq!(executor.in_flight(), 2);
    tokio::time::advance(Duration::from_secs(3601)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(runs(&t), ["record(3)", "record(1)"]);
    executor.wait_idle().await;
    assert_eq!(runs(&t), ["record(3)", "record(1)", "record(2)"]);
}

#[cfg(feature = "apalis-sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_queue_stores_extreme_schedules_or_refuses_them_without_panicking() {
    use airlock::queue::SqliteQueue;
    use std::time::SystemTime;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("jobs.db").display());
    let queue = SqliteQueue::connect(&url).await.unwrap();
    let t = tag("schedule-sqlite");

    // `build()` skips the enqueue-time check: the flush refuses it, queues
    // nothing, and hands the intents back instead of panicking in apalis.
    let scope = Scope::new().executor(queue.clone()).start();
    scope
        .in_scope(|| -> airlock::Result<()> {
            record::enqueue(t.clone(), 1)?;
            airlock::enqueue(record::intent(t.clone(), 2).delay(Duration::MAX).build())?;
            Ok(())
        })
        .unwrap();
    let error = scope.flush_async().await.expect_err("refused").to_string();
    assert!(error.contains("9999"), "{error}");
    let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM Jobs")
        .fetch_one(queue.pool())
        .await
        .unwrap();
    assert_eq!(queued, 0, "one transaction: nothing was queued");

    // A century ahead is stored as such; a run_at before 1970 runs at once.
    let scope = Scope::new().executor(queue.clone()).start();
    scope
        .in_scope(|| -> airlock::Result<()> {
            record::intent(t.clone(), 3).delay(YEAR * 100).enqueue()?;
            record::intent(t.clone(), 4)
                .run_at(UNIX_EPOCH - YEAR)
                .enqueue()?;
            Ok(())
        })
        .unwrap();
    scope.flush_async().await.expect("both are queued");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let run_at: Vec<i64> = sqlx::query_scalar("SELECT run_at FROM Jobs ORDER BY run_at")
        .fetch_all(queue.pool())
        .await
        .unwrap();
    assert_eq!(run_at.len(), 2);
    assert!(
        (now - 5..=now + 5).contains(&run_at[0]),
        "{run_at:?} vs {now}"
    );
    let century = (YEAR * 100).as_secs() as i64;
    assert!(
        (now + century - 5..=now + century + 5).contains(&run_at[1]),
        "{run_at:?}"
    );
}

#[cfg(feature = "tokio")]
#[test]
fn a_tokio_runtime_without_timers_refuses_a_delayed_intent_instead_of_losing_it() {
    use airlock::executor::TokioExecutor;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let t = tag("schedule-no-timers");
    let executor = TokioExecutor::on(runtime.handle().clone());
    let error = Scope::new()
        .executor(executor.clone())
        .run(|| {
            record::intent(t.clone(), 1)
                .delay(Duration::from_secs(1))
                .enqueue()
        })
        .expect_err("the flush is refused");
    assert!(error.to_string().contains("no timers"), "{error}");
    assert_eq!(executor.in_flight(), 0, "nothing was spawned");
    assert!(runs(&t).is_empty());
}
