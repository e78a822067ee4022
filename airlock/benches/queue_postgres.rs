//! A 10,000-intent flush into the apalis PostgreSQL queue: airlock's
//! one-transaction batch against the engine's own client, in the same run.
//!
//! Run against a server you own (it writes jobs to queues named
//! `airlock-bench-*` in `apalis.jobs`, creating the schema if needed, and
//! deletes them and vacuums the table afterwards):
//!
//! ```text
//! AIRLOCK_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/bench \
//!     cargo bench -p airlock --features apalis-postgres --bench queue_postgres
//! ```
//!
//! * `airlock_flush_batch`: one scope, 10k enqueues, one flush (`PostgresQueue`:
//!   one transaction, one multi-row `INSERT`);
//! * `apalis_push_bulk`: building 10k envelope jobs and the engine's own bulk push of them
//!   (`TaskSink::push_all`);
//! * `apalis_single_pushes`: 10k `TaskSink::push` calls, one per job.

#![allow(missing_docs)]

use std::time::{Duration, Instant};

use airlock::queue::apalis::prelude::{TaskBuilder, TaskSink};
use airlock::queue::PostgresQueue;
use airlock::Scope;

const N: u64 = 10_000;
const URL_VAR: &str = "AIRLOCK_POSTGRES_URL";

#[airlock::task]
fn bump(value: u64) {
    std::hint::black_box(value);
}

fn envelope(i: u64) -> serde_json::Value {
    serde_json::json!({ "v": 1, "id": "", "task": "bump", "args": { "value": i } })
}

/// Intents per second over `elapsed`, printed as one result line.
/// Rounds to run: `AIRLOCK_BENCH_ROUNDS`, or `default` (CI runs one).
fn rounds(default: usize) -> usize {
    std::env::var("AIRLOCK_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn report(label: &str, elapsed: Duration) -> f64 {
    let per_second = N as f64 / elapsed.as_secs_f64();
    println!(
        "{label:<24} {:>10.1} ms  {per_second:>12.0} intents/s",
        elapsed.as_secs_f64() * 1e3
    );
    per_second
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Checks that all `N` jobs of `queue` landed, then deletes them and vacuums
/// the table, so each measurement starts from the same table (without the
/// vacuum every round inserts into a more bloated one).
async fn check_and_clear(queue: &PostgresQueue, name: &str) {
    let landed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM apalis.jobs WHERE job_type = $1")
        .bind(name)
        .fetch_one(queue.pool())
        .await
        .expect("count the jobs");
    assert_eq!(landed, N as i64, "every job of {name} landed");
    sqlx::query("DELETE FROM apalis.jobs WHERE job_type = $1")
        .bind(name)
        .execute(queue.pool())
        .await
        .expect("delete the benchmark's jobs");
    sqlx::query("VACUUM apalis.jobs")
        .execute(queue.pool())
        .await
        .expect("vacuum the jobs table");
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches`: nothing to time
    }
    let Ok(url) = std::env::var(URL_VAR) else {
        println!(
            "queue_postgres: skipped, {URL_VAR} is not set. Point it at a PostgreSQL \
             database you may write to (the role must be able to create the hstore \
             extension the first time), e.g. after `createdb bench`:\n    \
             {URL_VAR}=postgres://postgres@127.0.0.1:5432/bench cargo bench -p airlock \
             --features apalis-postgres --bench queue_postgres"
        );
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let rounds = rounds(5);
    runtime.block_on(async {
        let queue = PostgresQueue::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connecting to {URL_VAR}={url}: {e}"));
        let prefix = format!("airlock-bench-{}", std::process::id());
        let mut rates: [Vec<f64>; 3] = Default::default();
        for round in 0..rounds {
            let name = format!("{prefix}-batch-{round}");
            let start = Instant::now();
            Scope::new()
                .executor(queue.clone())
                .run_async(async {
                    for i in 0..N {
                        bump::intent(i).queue(name.clone()).enqueue()?;
                    }
                    Ok::<(), airlock::Error>(())
                })
                .await
                .expect("the flush succeeds");
            let airlock = report("airlock_flush_batch", start.elapsed());
            check_and_clear(&queue, &name).await;

            let name = format!("{prefix}-bulk-{round}");
            let mut storage = queue.storage(&name);
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
            let bulk = report("apalis_push_bulk", start.elapsed());
            check_and_clear(&queue, &name).await;

            let name = format!("{prefix}-single-{round}");
            let mut storage = queue.storage(&name);
            let start = Instant::now();
            for i in 0..N {
                storage.push(envelope(i)).await.expect("single push");
            }
            let single = report("apalis_single_pushes", start.elapsed());
            check_and_clear(&queue, &name).await;

            println!(
                "airlock batch / apalis bulk: {:.2}x   airlock batch / single pushes: {:.1}x\n",
                airlock / bulk,
                airlock / single
            );
            for (all, rate) in rates.iter_mut().zip([airlock, bulk, single]) {
                all.push(rate);
            }
        }
        let [airlock, bulk, single] = rates.map(median);
        println!(
            "median of {rounds} rounds: airlock batch {airlock:.0}/s, apalis bulk {bulk:.0}/s, \
             single pushes {single:.0}/s; airlock / bulk {:.2}x, airlock / single {:.1}x",
            airlock / bulk,
            airlock / single
        );
    });
}
