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
//! * `apalis_bulk_same_payload`: the engine's bulk push of the very envelopes
//!   airlock writes for the same 10k intents (with their ULID `id`, `origin`
//!   and queue name in `options`), encoded before the timing starts.
//!   airlock's row over this one is airlock's own cost (enqueue, encoding,
//!   executor) with the payload size taken out; `apalis_push_bulk`'s jobs
//!   are smaller than airlock's;
//! * `apalis_single_pushes`: 10k `TaskSink::push` calls, one round trip each
//!   (skipped when `AIRLOCK_BENCH_SKIP_SINGLE` is set: they take most of a
//!   round).
//!
//! Each round prints its times and same-run ratios; the summary gives the
//! ratios of the fastest rounds and the spread of the per-round ratios.

#![allow(missing_docs)]

mod queue_common;

use queue_common::{airlock_payloads, bump, envelope, report, rounds, summary, LABELS, N, WARM_UP};

use std::time::Instant;

use airlock::queue::apalis::prelude::{TaskBuilder, TaskSink};
use airlock::queue::RedisQueue;
use airlock::Scope;

const QUEUE: &str = "airlock-bench";
const URL_VAR: &str = "AIRLOCK_REDIS_URL";

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

        // Untimed, first: a small flush and a small bulk push, so the first
        // timed round of neither side pays a cold start for the other (Redis
        // loads the push script on its first call, and the allocator's first
        // pages). Without it the first round runs airlock cold and the bulk
        // push on the script airlock loaded.
        Scope::new()
            .executor(queue.clone())
            .run_async(async {
                for i in 0..WARM_UP {
                    bump::intent(i).queue(QUEUE).enqueue()?;
                }
                Ok::<(), airlock::Error>(())
            })
            .await
            .expect("the warm-up flush succeeds");
        let tasks: Vec<_> = (0..WARM_UP)
            .map(|i| TaskBuilder::new(envelope(i)).build())
            .collect();
        queue
            .storage(QUEUE)
            .push_all(&mut futures_util::stream::iter(tasks))
            .await
            .expect("the warm-up bulk push");
        clear(&queue).await;
        let skip_single = std::env::var_os("AIRLOCK_BENCH_SKIP_SINGLE").is_some();
        let mut times = Vec::new();
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
            let airlock = start.elapsed();
            report(LABELS[0], airlock);
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
            let bulk = start.elapsed();
            report(LABELS[1], bulk);
            check_and_clear(&queue).await;

            let payloads = airlock_payloads(Some(QUEUE));
            let mut storage = queue.storage(QUEUE);
            let start = Instant::now();
            let tasks: Vec<_> = payloads
                .into_iter()
                .map(|payload| TaskBuilder::new(payload).build())
                .collect();
            storage
                .push_all(&mut futures_util::stream::iter(tasks))
                .await
                .expect("bulk push");
            let same = start.elapsed();
            report(LABELS[2], same);
            check_and_clear(&queue).await;

            let mut single = None;
            if !skip_single {
                let mut storage = queue.storage(QUEUE);
                let start = Instant::now();
                for i in 0..N {
                    storage.push(envelope(i)).await.expect("single push");
                }
                single = Some(start.elapsed());
                report(LABELS[3], start.elapsed());
                check_and_clear(&queue).await;
            }

            println!(
                "airlock / bulk: {:.2}x   airlock / bulk same payload: {:.2}x\n",
                bulk.as_secs_f64() / airlock.as_secs_f64(),
                same.as_secs_f64() / airlock.as_secs_f64(),
            );
            times.push([Some(airlock), Some(bulk), Some(same), single]);
        }
        summary(&times);
    });
}
