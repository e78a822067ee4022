//! Executor faults on the Redis queue: the broker down at flush, the
//! connection lost part-way through a multi-queue flush (before a push
//! reaches Redis, and after Redis ran it but before its reply came back), and
//! a slow (frozen) broker. Each test then reads what Redis really holds and
//! checks the flush's report against it:
//! * every intent reported `Dispatched` is in Redis exactly once;
//! * every intent reported `NotAttempted` (or `Failed`) is not, and is handed
//!   back in `not_attempted`, in order, and nothing else is;
//! * an intent whose push Redis may have run without the reply arriving is
//!   reported `Interrupted` and handed back in `in_doubt`, never claimed
//!   either way;
//! * a retry of what was handed back leaves each intent in Redis once.
//!
//! Faults come from a server of the test's own (`OwnRedis`: killed, frozen
//! with `SIGSTOP`) or from a fault-injecting proxy in front of the shared
//! test server (`airlock_tests::faults::FaultProxy`).
#![cfg(feature = "apalis-redis")]

use std::collections::BTreeMap;
use std::time::Duration;

use airlock::queue::RedisQueue;
use airlock::{Error, Scope, ScopeHandle};
use airlock_tests::faults::{Cut, FaultProxy};
use airlock_tests::flush_plan::*;
use airlock_tests::servers::redis::{redis, OwnRedis};
use airlock_tests::{record, tag};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A queue on `url` whose connection gives up reconnecting after one retry
/// (the default, six with backoff, takes six seconds to report a dead
/// server); the response timeout is Redis's default, 500 ms.
async fn queue(url: &str) -> RedisQueue {
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_connection_timeout(Some(Duration::from_millis(500)));
    let manager = redis::Client::open(url)
        .expect("a Redis URL")
        .get_connection_manager_with_config(config)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    RedisQueue::new(manager)
}

/// A connection of its own for reading what Redis holds.
async fn reader(url: &str) -> ConnectionManager {
    redis::Client::open(url)
        .expect("a Redis URL")
        .get_connection_manager()
        .await
        .expect("a reading connection")
}

/// The values of `tag`'s `record` jobs held in each queue's job hash, sorted.
async fn held(url: &str, tag: &str) -> BTreeMap<String, Vec<u64>> {
    let mut conn = reader(url).await;
    let mut out = BTreeMap::new();
    for queue in PLAN {
        let jobs: Vec<Vec<u8>> = redis::cmd("HVALS")
            .arg(format!("{queue}:data"))
            .query_async(&mut conn)
            .await
            .expect("HVALS");
        let mut values: Vec<u64> = jobs
            .iter()
            .map(|job| serde_json::from_slice::<serde_json::Value>(job).expect("a JSON envelope"))
            .filter(|job| job["args"]["tag"] == tag)
            .map(|job| job["args"]["value"].as_u64().expect("a value"))
            .collect();
        values.sort_unstable();
        out.insert(queue.to_owned(), values);
    }
    out
}

/// Connects `queue` and loads the push script: one intent flushed to a queue
/// of its own (a Redis connection is only opened on first use).
async fn warm_up(queue: &RedisQueue) {
    let report = Scope::new().executor(queue.clone()).start();
    report.in_scope(|| {
        record::intent(tag("warm-up"), 0)
            .queue("warm-up")
            .enqueue()
            .expect("enqueue")
    });
    report.flush_async().await.expect("the warm-up push");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_at_flush_nothing_is_dispatched_and_a_retry_queues_each_once() {
    let Some(server) = OwnRedis::start() else {
        return;
    };
    let queue = queue(&server.url()).await;
    let t = tag("redis-down");
    warm_up(&queue).await;
    let scope = planned(&queue, &t);
    server.kill();
    // The first push after the kill may go out on the connection that was
    // open (its write fails: "broken pipe"); on a connection shared by other
    // flushes that error does not prove Redis never got it, so that run is in
    // doubt. Or the connection already knows it is gone and reconnecting is
    // refused: nothing was sent.
    let failure = expect_failure(scope.flush_async().await);
    let fates_now = fates(failure.report.records());
    assert!(
        fates_now == ["not attempted"; 5]
            || fates_now
                == [
                    "interrupted",
                    "interrupted",
                    "not attempted",
                    "not attempted",
                    "not attempted"
                ],
        "nothing is claimed dispatched: {failure}"
    );
    // While it stays down, a refused connection proves nothing was queued.
    let t2 = tag("redis-still-down");
    let failure2 = expect_failure(planned(&queue, &t2).flush_async().await);
    assert_eq!(
        fates(failure2.report.records()),
        ["not attempted"; 5],
        "{failure2}"
    );
    assert!(failure2.in_doubt.is_empty());

    server.restart();
    check_failure(&failure, &held(&server.url(), &t).await);
    check_failure(&failure2, &held(&server.url(), &t2).await);
    // Nothing reached Redis, so retrying everything handed back (in doubt
    // included) queues each intent once.
    let mut again = failure.in_doubt;
    again.extend(failure.not_attempted);
    let report = retry(&queue, again).await;
    assert_eq!(report.dispatched(), ["record"; 5]);
    retry(&queue, failure2.not_attempted).await;
    assert_eq!(held(&server.url(), &t).await, everything_once());
    assert_eq!(held(&server.url(), &t2).await, everything_once());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_lost_on_the_way_is_not_queued_and_comes_back() {
    let Some(server) = redis() else { return };
    let url = server.fresh_database();
    let db = url.rsplit('/').next().expect("a database index").to_owned();
    let proxy = FaultProxy::start(server.port()).await;
    let queue = queue(&format!("redis://127.0.0.1:{}/{db}", proxy.port())).await;
    let t = tag("redis-cut-before");
    warm_up(&queue).await;
    // The second push (queue `second`) never reaches Redis.
    proxy.cut_on("second:data", 1, Cut::BeforeRequest);
    let failure = expect_failure(planned(&queue, &t).flush_async().await);
    assert_eq!(proxy.fired(), 1, "the proxy cut the second push");
    let held_now = held(&url, &t).await;
    assert_eq!(held_now["second"], [] as [u64; 0], "the push never arrived");
    check_failure(&failure, &held_now);
    let fates = fates(failure.report.records());
    assert_eq!(
        fates[..2],
        ["dispatched", "dispatched"],
        "the first push went through: {failure}"
    );
    assert_eq!(
        fates[3..],
        ["not attempted", "not attempted"],
        "nothing after the lost push was tried: {failure}"
    );
    // A connection that closes before any reply cannot tell whether Redis
    // ran the script: the second push is in doubt, not claimed.
    assert_eq!(fates[2], "interrupted", "{failure}");

    // The caller knows better here (the proxy dropped it): retry it with the
    // rest, and every intent is queued once; a worker runs each once.
    let mut again = failure.in_doubt;
    again.extend(failure.not_attempted);
    retry(&queue, again).await;
    assert_eq!(held(&url, &t).await, everything_once());
    work_every_queue(|options| queue.monitor(options), &t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_whose_reply_is_lost_is_in_doubt_not_handed_back_as_not_attempted() {
    let Some(server) = redis() else { return };
    let url = server.fresh_database();
    let db = url.rsplit('/').next().expect("a database index").to_owned();
    let proxy = FaultProxy::start(server.port()).await;
    let queue = queue(&format!("redis://127.0.0.1:{}/{db}", proxy.port())).await;
    let t = tag("redis-cut-after");
    warm_up(&queue).await;
    // Redis runs the second push; its reply never arrives.
    proxy.cut_on("second:data", 1, Cut::AfterReply);
    let failure = expect_failure(planned(&queue, &t).flush_async().await);
    assert_eq!(proxy.fired(), 1, "the proxy swallowed the reply");
    let held_now = held(&url, &t).await;
    assert_eq!(held_now["second"], [3], "Redis ran the second push");
    check_failure(&failure, &held_now);
    assert_eq!(
        fates(failure.report.records()),
        [
            "dispatched",
            "dispatched",
            "interrupted",
            "not attempted",
            "not attempted"
        ],
        "{failure}"
    );

    // Retrying only what was never attempted queues each intent once.
    retry(&queue, failure.not_attempted).await;
    assert_eq!(held(&url, &t).await, everything_once());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_broker_past_the_response_timeout_leaves_the_push_in_doubt() {
    let Some(server) = OwnRedis::start() else {
        return;
    };
    let queue = queue(&server.url()).await;
    let t = tag("redis-frozen");
    warm_up(&queue).await;
    let scope = planned(&queue, &t);
    server.pause();
    // The first push waits for the 500 ms response timeout, then the flush
    // gives up; Redis, frozen, has the request in its socket buffer.
    let result = scope.flush_async().await;
    server.resume();
    let failure = expect_failure(result);
    // Redis runs the request once it thaws: read after it did.
    let held_now = held(&server.url(), &t).await;
    assert_eq!(
        held_now["first"],
        [1, 2],
        "Redis ran the timed-out push after all"
    );
    check_failure(&failure, &held_now);
    assert_eq!(
        fates(failure.report.records()),
        [
            "interrupted",
            "interrupted",
            "not attempted",
            "not attempted",
            "not attempted"
        ],
        "{failure}"
    );
    retry(&queue, failure.not_attempted).await;
    assert_eq!(held(&server.url(), &t).await, everything_once());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_the_caller_times_out_is_interrupted_never_dispatched() {
    let Some(server) = OwnRedis::start() else {
        return;
    };
    let queue = queue(&server.url()).await;
    let t = tag("redis-caller-timeout");
    warm_up(&queue).await;
    let scope = planned(&queue, &t);
    let handle: ScopeHandle = scope.handle();
    server.pause();
    // The caller gives up before Redis's own response timeout.
    let timed_out = tokio::time::timeout(Duration::from_millis(300), scope.flush_async()).await;
    server.resume();
    assert!(timed_out.is_err(), "the flush was still waiting on Redis");
    let records = handle.records();
    assert_eq!(
        fates(&records),
        ["interrupted"; 5],
        "a dropped flush claims nothing"
    );
    let held_now = held(&server.url(), &t).await;
    check_report(&records, &held_now);
    assert_eq!(
        held_now,
        BTreeMap::from([
            ("first".to_owned(), vec![1, 2]),
            ("second".to_owned(), vec![]),
            ("third".to_owned(), vec![]),
        ]),
        "the push in flight ran when Redis thawed; the later ones were never sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_broker_within_the_timeouts_dispatches_everything_late() {
    let Some(server) = redis() else { return };
    let url = server.fresh_database();
    let db = url.rsplit('/').next().expect("a database index").to_owned();
    let proxy = FaultProxy::start(server.port()).await;
    let queue = queue(&format!("redis://127.0.0.1:{}/{db}", proxy.port())).await;
    let t = tag("redis-slow");
    warm_up(&queue).await;
    // Every request waits 100 ms on the way: slow, within the 500 ms timeout.
    proxy.set_delay(Duration::from_millis(100));
    let result = planned(&queue, &t).flush_async().await;
    proxy.set_delay(Duration::ZERO);
    let held_now = held(&url, &t).await;
    match result {
        Ok(report) => {
            check_report(report.records(), &held_now);
            assert_eq!(report.dispatched(), ["record"; 5]);
            assert_eq!(held_now, everything_once());
        }
        // A machine too loaded for 100 ms + the push within 500 ms: the
        // report must still be right.
        Err(Error::Dispatch(failure)) => check_failure(&failure, &held_now),
        Err(other) => panic!("unexpected error {other}"),
    }
}
