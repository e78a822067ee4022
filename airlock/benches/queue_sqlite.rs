//! A 10,000-intent flush into the apalis SQLite queue: airlock's one-transaction
//! batch against the engine's own client, in the same run.
//!
//! Run: `cargo bench -p airlock --features apalis-sqlite --bench queue_sqlite`
//!
//! * `airlock_flush_batch`: one scope, 10k enqueues, one flush (`SqliteQueue`:
//!   one SQLite transaction);
//! * `apalis_push_bulk`: building 10k envelope jobs and the engine's own bulk push of them
//!   (`TaskSink::push_all`);
//! * `apalis_bulk_same_payload`: the engine's bulk push of the very envelopes
//!   airlock writes for the same 10k intents (with their ULID `id` and
//!   `origin`), encoded before the timing starts. airlock's row over this one
//!   is airlock's own cost (enqueue, encoding, executor) with the payload size
//!   taken out; `apalis_push_bulk`'s jobs are smaller than airlock's;
//! * `apalis_single_pushes`: 10k `TaskSink::push` calls, one per job (skipped
//!   when `AIRLOCK_BENCH_SKIP_SINGLE` is set: they take most of a round).
//!
//! Each round prints its times and same-run ratios; the summary gives the
//! ratios of the fastest rounds and the spread of the per-round ratios.

#![allow(missing_docs)]

mod queue_common;

use queue_common::{airlock_payloads, bump, envelope, report, rounds, summary, LABELS, N, WARM_UP};

use std::time::Instant;

use airlock::queue::apalis::prelude::{TaskBuilder, TaskSink};
use airlock::queue::SqliteQueue;
use airlock::Scope;

async fn fresh_queue(dir: &std::path::Path, name: &str) -> SqliteQueue {
    let url = format!("sqlite://{}?mode=rwc", dir.join(name).display());
    SqliteQueue::connect(&url)
        .await
        .expect("the queue database opens")
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches`: nothing to time
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let dir = std::env::temp_dir().join(format!("airlock-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let rounds = rounds(3);
    let skip_single = std::env::var_os("AIRLOCK_BENCH_SKIP_SINGLE").is_some();
    let mut times = Vec::new();
    runtime.block_on(async {
        // Untimed, first: a small flush and a small bulk push, so the first
        // timed round of neither side pays the process's cold start (the
        // allocator's first pages, lazy statics) for the other. Without it
        // the first round runs airlock cold and the bulk push warm.
        let queue = fresh_queue(&dir, "warm-up.db").await;
        Scope::new()
            .executor(queue.clone())
            .run_async(async {
                for i in 0..WARM_UP {
                    bump::enqueue(i)?;
                }
                Ok::<(), airlock::Error>(())
            })
            .await
            .expect("the warm-up flush succeeds");
        let tasks: Vec<_> = (0..WARM_UP)
            .map(|i| TaskBuilder::new(envelope(i)).build())
            .collect();
        queue
            .storage("warm-up")
            .push_all(&mut futures_util::stream::iter(tasks))
            .await
            .expect("the warm-up bulk push");

        for round in 0..rounds {
            let queue = fresh_queue(&dir, &format!("batch-{round}.db")).await;
            let start = Instant::now();
            Scope::new()
                .executor(queue)
                .run_async(async {
                    for i in 0..N {
                        bump::enqueue(i)?;
                    }
                    Ok::<(), airlock::Error>(())
                })
                .await
                .expect("the flush succeeds");
            let airlock = start.elapsed();
            report(LABELS[0], airlock);

            let queue = fresh_queue(&dir, &format!("bulk-{round}.db")).await;
            let mut storage = queue.storage("airlock");
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

            let payloads = airlock_payloads(None);
            let queue = fresh_queue(&dir, &format!("same-{round}.db")).await;
            let mut storage = queue.storage("airlock");
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

            let mut single = None;
            if !skip_single {
                let queue = fresh_queue(&dir, &format!("single-{round}.db")).await;
                let mut storage = queue.storage("airlock");
                let start = Instant::now();
                for i in 0..N {
                    storage.push(envelope(i)).await.expect("single push");
                }
                single = Some(start.elapsed());
                report(LABELS[3], start.elapsed());
            }
            println!(
                "airlock / bulk: {:.2}x   airlock / bulk same payload: {:.2}x\n",
                bulk.as_secs_f64() / airlock.as_secs_f64(),
                same.as_secs_f64() / airlock.as_secs_f64(),
            );
            times.push([Some(airlock), Some(bulk), Some(same), single]);
        }
    });
    summary(&times);
    let _ = std::fs::remove_dir_all(&dir);
}
