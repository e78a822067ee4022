//! A 10,000-intent flush into the apalis SQLite queue: airlock's one-transaction
//! batch against the engine's own client, in the same run.
//!
//! Run: `cargo bench -p airlock --features apalis-sqlite --bench queue_sqlite`
//!
//! * `airlock_flush_batch`: one scope, 10k enqueues, one flush (`SqliteQueue`:
//!   one SQLite transaction);
//! * `apalis_push_bulk`: building 10k envelope jobs and the engine's own bulk push of them
//!   (`TaskSink::push_all`);
//! * `apalis_single_pushes`: 10k `TaskSink::push` calls, one per job.

#![allow(missing_docs)]

use std::time::{Duration, Instant};

use airlock::queue::apalis::prelude::{TaskBuilder, TaskSink};
use airlock::queue::SqliteQueue;
use airlock::Scope;

const N: u64 = 10_000;

#[airlock::task]
fn bump(value: u64) {
    std::hint::black_box(value);
}

fn envelope(i: u64) -> serde_json::Value {
    serde_json::json!({ "v": 1, "id": "", "task": "bump", "args": { "value": i } })
}

async fn fresh_queue(dir: &std::path::Path, name: &str) -> SqliteQueue {
    let url = format!("sqlite://{}?mode=rwc", dir.join(name).display());
    SqliteQueue::connect(&url)
        .await
        .expect("the queue database opens")
}

/// Rounds to run: `AIRLOCK_BENCH_ROUNDS`, or `default` (CI runs one).
fn rounds(default: usize) -> usize {
    std::env::var("AIRLOCK_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn report(label: &str, elapsed: Duration) {
    let per_second = N as f64 / elapsed.as_secs_f64();
    println!(
        "{label:<24} {:>10.1} ms  {per_second:>12.0} intents/s",
        elapsed.as_secs_f64() * 1e3
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches`: nothing to time
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let dir = std::env::temp_dir().join(format!("airlock-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    runtime.block_on(async {
        for round in 0..rounds(3) {
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
            report("airlock_flush_batch", start.elapsed());

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
            report("apalis_push_bulk", start.elapsed());

            let queue = fresh_queue(&dir, &format!("single-{round}.db")).await;
            let mut storage = queue.storage("airlock");
            let start = Instant::now();
            for i in 0..N {
                storage.push(envelope(i)).await.expect("single push");
            }
            report("apalis_single_pushes", start.elapsed());
            println!();
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}
