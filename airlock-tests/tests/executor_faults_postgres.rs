//! Executor faults on the PostgreSQL queue, whose flush is one transaction:
//! the server down at flush (crashed, and back), the session killed or the
//! connection cut part-way through the batch, the answer to `COMMIT` lost,
//! and a frozen server. Each test then reads `apalis.jobs` on a connection of
//! its own and checks the flush's report against it:
//! * every intent reported `Dispatched` is in the table exactly once;
//! * every intent reported `NotAttempted` is not, and is handed back in
//!   `not_attempted`, in order, and nothing else is;
//! * a flush whose `COMMIT` was sent but not answered is in doubt
//!   (`Interrupted`, handed back in `in_doubt`), never claimed either way;
//! * the batch is all or nothing;
//! * a retry of what was handed back leaves each intent in the table once.
#![cfg(feature = "apalis-postgres")]

use std::collections::BTreeMap;
use std::time::Duration;

use airlock::queue::PostgresQueue;
use airlock::Error;
use airlock_tests::faults::{Cut, FaultProxy};
use airlock_tests::flush_plan::*;
use airlock_tests::servers::postgres::{postgres, OwnPostgres};
use airlock_tests::{record, tag};
use sqlx::postgres::PgPoolOptions;

/// A queue on `url` through a pool that waits at most 3 s for a connection
/// (sqlx's default, 30 s, retries a refused connection all that time).
async fn queue(url: &str) -> PostgresQueue {
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(3))
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    PostgresQueue::new(pool).await.expect("the queue sets up")
}

/// The values of `tag`'s jobs in each queue, sorted, read on a connection
/// of its own.
async fn held(url: &str, tag: &str) -> BTreeMap<String, Vec<u64>> {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("a reading connection");
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT job_type, convert_from(job, 'UTF8')::jsonb #>> '{args,value}' \
         FROM apalis.jobs WHERE convert_from(job, 'UTF8')::jsonb #>> '{args,tag}' = $1",
    )
    .bind(tag)
    .fetch_all(&mut conn)
    .await
    .expect("read the jobs");
    let _ = conn.close().await;
    let mut out: BTreeMap<String, Vec<u64>> =
        PLAN.iter().map(|q| ((*q).to_owned(), Vec::new())).collect();
    for (queue, value) in rows {
        out.entry(queue)
            .or_default()
            .push(value.parse().expect("a value"));
    }
    out.values_mut().for_each(|v| v.sort_unstable());
    out
}

/// A fresh database on the shared server, a proxy in front of the server,
/// and a queue connected through the proxy.
async fn proxied() -> Option<(String, FaultProxy, PostgresQueue)> {
    let server = postgres()?;
    let url = server.fresh_database().await;
    let db = url.rsplit('/').next().expect("a database name").to_owned();
    let proxy = FaultProxy::start(server.port()).await;
    let through = format!("postgres://postgres@127.0.0.1:{}/{db}", proxy.port());
    let queue = queue(&through).await;
    Some((url, proxy, queue))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_at_flush_nothing_is_dispatched_and_a_retry_queues_each_once() {
    let Some(mut server) = OwnPostgres::start() else {
        return;
    };
    let url = server.server().fresh_database().await;
    let queue = queue(&url).await;
    // One flush goes through before the crash.
    let before = tag("pg-before-crash");
    let report = planned(&queue, &before).flush_async().await.unwrap();
    assert_eq!(report.dispatched(), ["record"; 5]);
    let t = tag("pg-down");
    server.crash();
    let failure = expect_failure(planned(&queue, &t).flush_async().await);
    assert_eq!(
        fates(failure.report.records()),
        ["not attempted"; 5],
        "nothing reached a server that is down: {failure}"
    );
    assert!(failure.in_doubt.is_empty());
    server.restart();
    assert_eq!(
        held(&url, &before).await,
        everything_once(),
        "what was reported dispatched survived the crash"
    );
    check_failure(&failure, &held(&url, &t).await);
    let report = retry(&queue, failure.not_attempted).await;
    assert_eq!(report.dispatched(), ["record"; 5]);
    assert_eq!(held(&url, &t).await, everything_once());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_killed_mid_batch_queues_nothing_and_hands_every_intent_back() {
    let Some(server) = postgres() else { return };
    let url = server.fresh_database().await;
    let queue = queue(&url).await;
    let t = tag("pg-terminated");
    // The second queue's INSERT waits (the first is already in the open
    // transaction) until the test kills the session from outside.
    sqlx::raw_sql(
        "CREATE FUNCTION hold_second() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF NEW.job_type = 'second' THEN PERFORM pg_sleep(30); END IF; \
           RETURN NEW; \
         END $$; \
         CREATE TRIGGER hold_second BEFORE INSERT ON apalis.jobs \
           FOR EACH ROW EXECUTE FUNCTION hold_second();",
    )
    .execute(queue.pool())
    .await
    .unwrap();
    let flush = tokio::spawn(planned(&queue, &t).flush_async());
    let admin = queue.pool().clone();
    let killed = async {
        loop {
            let killed: Vec<bool> = sqlx::query_scalar(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE query LIKE 'INSERT%' AND wait_event = 'PgSleep'",
            )
            .fetch_all(&admin)
            .await
            .expect("look for the held session");
            if killed.contains(&true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), killed)
        .await
        .expect("the batch reached the second INSERT");
    let failure = expect_failure(flush.await.expect("the flush task"));
    assert_eq!(
        fates(failure.report.records()),
        ["not attempted"; 5],
        "{failure}"
    );
    let held_now = held(&url, &t).await;
    check_failure(&failure, &held_now);
    assert!(
        held_now.values().all(Vec::is_empty),
        "the first INSERT rolled back with the session: {held_now:?}"
    );
    sqlx::raw_sql("DROP TRIGGER hold_second ON apalis.jobs")
        .execute(queue.pool())
        .await
        .unwrap();
    retry(&queue, failure.not_attempted).await;
    assert_eq!(held(&url, &t).await, everything_once());
    work_every_queue(|options| queue.monitor(options), &t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_mid_batch_queues_nothing_and_hands_every_intent_back() {
    let Some((url, proxy, queue)) = proxied().await else {
        return;
    };
    let t = tag("pg-cut");
    // The second queue's INSERT never reaches the server.
    proxy.cut_on("second", 1, Cut::BeforeRequest);
    let failure = expect_failure(planned(&queue, &t).flush_async().await);
    assert_eq!(proxy.fired(), 1, "the proxy cut the batch");
    assert_eq!(
        fates(failure.report.records()),
        ["not attempted"; 5],
        "{failure}"
    );
    check_failure(&failure, &held(&url, &t).await);
    retry(&queue, failure.not_attempted).await;
    assert_eq!(held(&url, &t).await, everything_once());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_to_commit_is_in_doubt_not_handed_back_as_not_attempted() {
    let Some((url, proxy, queue)) = proxied().await else {
        return;
    };
    let t = tag("pg-commit-lost");
    // The server commits; its answer never arrives.
    proxy.cut_on("COMMIT", 1, Cut::AfterReply);
    let failure = expect_failure(planned(&queue, &t).flush_async().await);
    assert_eq!(proxy.fired(), 1, "the proxy swallowed the answer to COMMIT");
    let held_now = held(&url, &t).await;
    assert_eq!(held_now, everything_once(), "the server committed");
    check_failure(&failure, &held_now);
    assert_eq!(
        fates(failure.report.records()),
        ["interrupted"; 5],
        "{failure}"
    );
    assert!(failure.not_attempted.is_empty(), "{failure}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_co_commit_whose_commit_answer_is_lost_reports_its_intents_in_doubt() {
    let Some((url, proxy, queue)) = proxied().await else {
        return;
    };
    let t = tag("pg-cocommit-lost");
    let tx = queue.pool().begin().await.expect("a transaction");
    let scope = airlock::tx::co_commit(tx);
    let handle = scope.handle();
    handle
        .in_scope(|| -> airlock::Result<()> {
            for (i, q) in PLAN.iter().enumerate() {
                record::intent(t.clone(), i as u64 + 1)
                    .queue(*q)
                    .enqueue()?;
            }
            Ok(())
        })
        .expect("enqueue");
    // The server commits the jobs; its answer never arrives.
    proxy.cut_on("COMMIT", 1, Cut::AfterReply);
    let error = scope.commit().await.expect_err("the commit got no answer");
    assert_eq!(proxy.fired(), 1, "the proxy swallowed the answer to COMMIT");
    assert!(matches!(error, Error::TransactionInDoubt { .. }), "{error}");
    assert!(error.to_string().contains("outcome is unknown"), "{error}");
    assert!(!error.to_string().contains("rolled back"), "{error}");
    assert_eq!(
        held(&url, &t).await,
        everything_once(),
        "the server committed"
    );
    let records = handle.records();
    assert_eq!(fates(&records), ["interrupted"; 5], "{records:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_after_commit_whose_commit_answer_is_lost_is_in_doubt_never_a_false_rollback() {
    let Some((url, proxy, queue)) = proxied().await else {
        return;
    };
    let t = tag("pg-aftercommit-lost");
    sqlx::query("CREATE TABLE orders (tag TEXT NOT NULL)")
        .execute(queue.pool())
        .await
        .unwrap();
    let mut tx = queue.pool().begin().await.expect("a transaction");
    sqlx::query("INSERT INTO orders (tag) VALUES ($1)")
        .bind(&t)
        .execute(&mut *tx)
        .await
        .unwrap();
    let scope = airlock::Scope::new()
        .executor(airlock::InProcess)
        .after_commit(tx);
    let handle = scope.handle();
    handle
        .in_scope(|| record::enqueue(t.clone(), 1))
        .expect("enqueue");
    // The server commits; its answer never arrives.
    proxy.cut_on("COMMIT", 1, Cut::AfterReply);
    let error = scope.commit().await.expect_err("the commit got no answer");
    assert_eq!(proxy.fired(), 1, "the proxy swallowed the answer to COMMIT");
    let Error::TransactionInDoubt { in_doubt, .. } = &error else {
        panic!("expected TransactionInDoubt, got {error}");
    };
    assert_eq!(in_doubt.len(), 1, "the intent is handed back");
    assert!(!error.to_string().contains("rolled back"), "{error}");
    let pool = PgPoolOptions::new().connect(&url).await.unwrap();
    let committed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE tag = $1")
        .bind(&t)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(committed, 1, "the server did commit the row");
    assert_eq!(
        fates(&handle.records()),
        ["interrupted"],
        "in doubt, not discarded"
    );
    assert!(
        airlock_tests::runs(&t).is_empty(),
        "not dispatched on a guess"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_after_commit_the_caller_stops_waiting_for_mid_commit_still_commits_and_dispatches() {
    // A deferred trigger makes COMMIT itself take a second; the caller's
    // timeout fires meanwhile. The transaction commits anyway, and its
    // intents must be dispatched although nobody awaits the commit any more.
    let Some(server) = postgres() else {
        return;
    };
    let url = server.fresh_database().await;
    let pool = PgPoolOptions::new().connect(&url).await.unwrap();
    for statement in [
        "CREATE TABLE orders (tag TEXT NOT NULL)",
        "CREATE FUNCTION slow_commit() RETURNS trigger AS $$ \
         BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$ LANGUAGE plpgsql",
        "CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON orders \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let t = tag("pg-aftercommit-abandoned");
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO orders (tag) VALUES ($1)")
        .bind(&t)
        .execute(&mut *tx)
        .await
        .unwrap();
    let scope = airlock::Scope::new()
        .executor(airlock::InProcess)
        .after_commit(tx);
    let handle = scope.handle();
    handle
        .in_scope(|| record::enqueue(t.clone(), 1))
        .expect("enqueue");
    let timed_out = tokio::time::timeout(Duration::from_millis(300), scope.commit()).await;
    assert!(
        timed_out.is_err(),
        "COMMIT was still running its deferred trigger"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while airlock_tests::runs(&t).is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let committed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE tag = $1")
        .bind(&t)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(committed, 1, "the transaction committed");
    assert_eq!(airlock_tests::runs(&t), ["record(1)"], "and its intent ran");
    assert_eq!(fates(&handle.records()), ["dispatched"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_holds_the_flush_until_it_thaws_then_everything_is_dispatched() {
    let Some(server) = OwnPostgres::start() else {
        return;
    };
    let url = server.server().fresh_database().await;
    let queue = queue(&url).await;
    let t = tag("pg-slow");
    let scope = planned(&queue, &t);
    server.pause();
    let thaw = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            server.resume();
        });
        // The flush has no timeout of its own: it waits for the server.
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(scope.flush_async())
        })
    });
    let report = thaw.expect("the flush completes once the server thaws");
    assert_eq!(report.dispatched(), ["record"; 5]);
    let held_now = held(&url, &t).await;
    check_report(report.records(), &held_now);
    assert_eq!(held_now, everything_once());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_the_caller_times_out_on_a_frozen_server_is_interrupted_never_dispatched() {
    let Some(server) = OwnPostgres::start() else {
        return;
    };
    let url = server.server().fresh_database().await;
    let queue = queue(&url).await;
    let t = tag("pg-caller-timeout");
    let scope = planned(&queue, &t);
    let handle = scope.handle();
    server.pause();
    let timed_out = tokio::time::timeout(Duration::from_millis(200), scope.flush_async()).await;
    server.resume();
    assert!(timed_out.is_err(), "the flush was still waiting");
    let records = handle.records();
    assert_eq!(fates(&records), ["interrupted"; 5]);
    // Whatever the server does with the abandoned transaction, it is all or
    // nothing, and nothing was claimed.
    let held_now = held(&url, &t).await;
    check_report(&records, &held_now);
    assert!(all_or_nothing(&held_now), "{held_now:?}");
}
