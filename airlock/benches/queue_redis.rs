//! A 10,000-intent flush into an apalis-redis queue: airlock's one-script batch
//! against the engine's own client, in the same run.
//!
//! Run (against a Redis you can spare; the bench writes the queue
//! `airlock-bench` and deletes its keys before and after each measurement):
//!
//! ```text
//! redis-server --port 6390 --save "" --appendonly no &
//! AIRLOCK_REDIS_URL=redis://127.0.0.1:6390/ \
//!     cargo bench -p airlock --features apalis-redis --bench queue_redis
//! ```
//!
//! * `airlock_flush_batch`: one scope, 10k enqueues, one flush (`RedisQueue`:
//!   one `batch_push` script call);
//! * `apalis_push_bulk`: building 10k envelope jobs and the engine's own bulk push of them
//!   (`TaskSink::push_all`, also one script call);
//! * `apalis_single_pushes`: 10k `TaskSink::push` calls, one round trip each.
//!
//! Each round prints its times; the summary keeps each variant's fastest round
//! and gives the ratios between them.

#![allow(missing_docs)]

use std::time::{Duration, Instant};

use airlock::queue::apalis::prelude::{TaskBuilder, TaskSink};
use airlock::queue::RedisQueue;
use airlock::Scope;

const N: u64 = 10_000;
const QUEUE: &str = "airlock-bench";
const URL_VAR: &str = "AIRLOCK_REDIS_URL";

#[airlock::task]
fn bump(value: u64) {
    std::hint::black_box(value);
}

fn envelope(i: u64) -> serde_json::Value {
    serde_json::json!({ "v": 1, "id": "", "task": "bump", "args": { "value": i } })
}

fn per_second(elapsed: Duration) -> f64 {
    N as f64 / elapsed.as_secs_f64()
}

/// Rounds to run: `AIRLOCK_BENCH_ROUNDS`, or `default` (CI runs one).
fn rounds(default: usize) -> usize {
    std::env::var("AIRLOCK_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn report(label: &str, elapsed: Duration) {
    println!(
        "{label:<24} {:>10.1} ms  {:>12.0} intents/s",
        elapsed.as_secs_f64() * 1e3,
        per_second(elapsed)
    );
}

/// Deletes every key of the bench queue.
async fn clear(queue: &RedisQueue) {
    let mut conn = queue.connection().clone();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{QUEUE}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("SCAN");
        if !keys.is_empty() {
            let _: () = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .expect("UNLINK");
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}

/// Checks that the measurement really queued `N` jobs, then deletes them.
async fn check_and_clear(queue: &RedisQueue) {
    let queued: u64 = redis::cmd("ZCARD")
        .arg(format!("{QUEUE}:scheduled"))
        .query_async(&mut queue.connection().clone())
        .await
        .expect("ZCARD");
    assert_eq!(queued, N, "every job was queued");
    clear(queue).await;
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches`: nothing to time
    }
    let Ok(url) = std::env::var(URL_VAR) else {
        println!(
            "queue_redis: {URL_VAR} is not set, so there is nothing to measure. Start a \
             throwaway server and point the bench at it:\n\n  \
             redis-server --port 6390 --save \"\" --appendonly no &\n  \
             {URL_VAR}=redis://127.0.0.1:6390/ cargo bench -p airlock --features apalis-redis \
             --bench queue_redis\n"
        );
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let rounds = rounds(5);
    runtime.block_on(async {
        let queue = RedisQueue::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
        clear(&queue).await;
        let mut best = [Duration::MAX; 3];
        for _ in 0..rounds {
            let start = Instant::now();
            Scope::new()
                .executor(queue.clone())
                .run_async(async {
                    for i in 0..N {
                        bump::intent(i).queue(QUEUE).enqueue()?;
                    }
                    Ok::<(), airlock::Error>(())
                })
                .await
                .expect("the flush succeeds");
            let elapsed = start.elapsed();
            report("airlock_flush_batch", elapsed);
            best[0] = best[0].min(elapsed);
            check_and_clear(&queue).await;

            let mut storage = queue.storage(QUEUE);
            let start = Instant::now();
            // Building the jobs is part of pushing them, as it is for airlock's
            // enqueue + envelope encoding.
            let tasks: Vec<_> = (0..N)
                .map(|i| TaskBuilder::new(envelope(i)).build())
                .collect();
            storage
                .push_all(&mut futures_util::stream::iter(tasks))
                .await
                .expect("bulk push");
            let elapsed = start.elapsed();
            report("apalis_push_bulk", elapsed);
            best[1] = best[1].min(elapsed);
            check_and_clear(&queue).await;

            let mut storage = queue.storage(QUEUE);
            let start = Instant::now();
            for i in 0..N {
                storage.push(envelope(i)).await.expect("single push");
            }
            let elapsed = start.elapsed();
            report("apalis_single_pushes", elapsed);
            best[2] = best[2].min(elapsed);
            check_and_clear(&queue).await;
            println!();
        }
        let [batch, bulk, single] = best.map(per_second);
        println!("fastest of {rounds} rounds, {N} intents each:");
        println!("  airlock_flush_batch   {batch:>12.0} intents/s");
        println!("  apalis_push_bulk      {bulk:>12.0} intents/s");
        println!("  apalis_single_pushes  {single:>12.0} intents/s");
        println!(
            "  airlock batch / apalis bulk   {:.2}x\n  airlock batch / single pushes {:.2}x",
            batch / bulk,
            batch / single
        );
    });
}
