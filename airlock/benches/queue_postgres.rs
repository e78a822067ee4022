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
//! * `apalis_bulk_same_payload`: the engine's bulk push of the very envelopes
//!   airlock writes for the same 10k intents (with their ULID `id`, `origin`
//!   and queue name in `options`), encoded before the timing starts.
//!   airlock's row over this one is airlock's own cost (enqueue, encoding,
//!   executor) with the payload size taken out; `apalis_push_bulk`'s jobs
//!   are smaller than airlock's;
//! * `apalis_single_pushes`: 10k `TaskSink::push` calls, one per job (skipped
//!   when `AIRLOCK_BENCH_SKIP_SINGLE` is set: they take most of a round).
//!
//! Each round prints its times and same-run ratios; the summary gives the
//! ratios of the fastest rounds and the spread of the per-round ratios.

#![allow(missing_docs)]

use std::time::{Duration, Instant};

use airlock::envelope::Envelope;
use airlock::queue::apalis::prelude::{TaskBuilder, TaskSink};
use airlock::queue::PostgresQueue;
use airlock::Scope;

const N: u64 = 10_000;
const URL_VAR: &str = "AIRLOCK_POSTGRES_URL";
/// Jobs of the untimed warm-up before the first round.
const WARM_UP: u64 = 1_000;

#[airlock::task]
fn bump(value: u64) {
    std::hint::black_box(value);
}

fn envelope(i: u64) -> serde_json::Value {
    serde_json::json!({ "v": 1, "id": "", "task": "bump", "args": { "value": i } })
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

/// The envelopes airlock writes for the benchmark's 10k intents (to `queue`), as the
/// JSON values the engine's storage takes, encoded outside any timing.
fn airlock_payloads(queue: &str) -> Vec<serde_json::Value> {
    let captured = airlock::testing::capture(|| {
        (0..N).try_for_each(|i| bump::intent(i).queue(queue.to_owned()).enqueue().map(drop))
    });
    captured.value.expect("the enqueues succeed");
    captured
        .intents
        .iter()
        .map(|intent| {
            let id = ulid::Ulid::generate().to_string();
            let bytes = Envelope::from_intent(intent, id)
                .and_then(|envelope| envelope.to_json())
                .expect("the envelope encodes");
            let value: serde_json::Value =
                serde_json::from_slice(&bytes).expect("the envelope is JSON");
            // The storage's codec writes the value again: same fields, so the
            // same size as what airlock pushes.
            assert_eq!(serde_json::to_vec(&value).unwrap().len(), bytes.len());
            value
        })
        .collect()
}

const LABELS: [&str; 4] = [
    "airlock_flush_batch",
    "apalis_push_bulk",
    "apalis_bulk_same_payload",
    "apalis_single_pushes",
];

/// One round's times, in `LABELS` order (`None`: skipped).
type Round = [Option<Duration>; 4];

/// Prints each variant's fastest round and airlock's rate over the bulk
/// pushes' (above 1: airlock is faster): from the fastest rounds, and the
/// median and range of the same-round ratios, which a busy machine disturbs
/// less.
fn summary(rounds: &[Round]) {
    let fastest = |column: usize| rounds.iter().filter_map(|round| round[column]).min();
    println!("fastest of {} rounds, {N} intents each:", rounds.len());
    for (column, label) in LABELS.iter().enumerate() {
        if let Some(elapsed) = fastest(column) {
            println!(
                "  {label:<26} {:>12.0} intents/s",
                N as f64 / elapsed.as_secs_f64()
            );
        }
    }
    for (column, label) in [
        (1, "apalis bulk"),
        (2, "apalis bulk, same payload"),
        (3, "single pushes"),
    ] {
        let (Some(airlock), Some(other)) = (fastest(0), fastest(column)) else {
            continue;
        };
        let mut ratios: Vec<f64> = rounds
            .iter()
            .filter_map(|round| Some(round[column]?.as_secs_f64() / round[0]?.as_secs_f64()))
            .collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "  airlock / {label:<26} {:>5.2}x fastest, {:.2}x median per round ({:.2}-{:.2})",
            other.as_secs_f64() / airlock.as_secs_f64(),
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1],
        );
    }
}

/// Checks that all `N` jobs of `queue` landed, then deletes them and vacuums
/// the table, so each measurement starts from the same table (without the
/// vacuum every round inserts into a more bloated one).
async fn check_and_clear(queue: &PostgresQueue, name: &str) {
    check_and_clear_n(queue, name, N).await;
}

/// [`check_and_clear`] for `n` jobs.
async fn check_and_clear_n(queue: &PostgresQueue, name: &str, n: u64) {
    let landed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM apalis.jobs WHERE job_type = $1")
        .bind(name)
        .fetch_one(queue.pool())
        .await
        .expect("count the jobs");
    assert_eq!(landed, n as i64, "every job of {name} landed");
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

        // Untimed, first: a small flush and a small bulk push, so the first
        // timed round of neither side pays a cold start for the other (the
        // pooled connection's first use of the INSERT prepares it, and the
        // allocator's first pages). Without it the first round runs airlock
        // cold and the bulk push on the statement airlock prepared.
        let name = format!("{prefix}-warm-up");
        Scope::new()
            .executor(queue.clone())
            .run_async(async {
                for i in 0..WARM_UP {
                    bump::intent(i).queue(name.clone()).enqueue()?;
                }
                Ok::<(), airlock::Error>(())
            })
            .await
            .expect("the warm-up flush succeeds");
        let tasks: Vec<_> = (0..WARM_UP)
            .map(|i| TaskBuilder::new(envelope(i)).build())
            .collect();
        queue
            .storage(&name)
            .push_all(&mut futures_util::stream::iter(tasks))
            .await
            .expect("the warm-up bulk push");
        check_and_clear_n(&queue, &name, 2 * WARM_UP).await;
        let skip_single = std::env::var_os("AIRLOCK_BENCH_SKIP_SINGLE").is_some();
        let mut times = Vec::new();
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
            let airlock = start.elapsed();
            report(LABELS[0], airlock);
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
            let bulk = start.elapsed();
            report(LABELS[1], bulk);
            check_and_clear(&queue, &name).await;

            // As long as the airlock row's queue name, which its envelopes carry.
            let name = format!("{prefix}-exact-{round}");
            let payloads = airlock_payloads(&name);
            let mut storage = queue.storage(&name);
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
            check_and_clear(&queue, &name).await;

            let mut single = None;
            if !skip_single {
                let name = format!("{prefix}-single-{round}");
                let mut storage = queue.storage(&name);
                let start = Instant::now();
                for i in 0..N {
                    storage.push(envelope(i)).await.expect("single push");
                }
                single = Some(start.elapsed());
                report(LABELS[3], start.elapsed());
                check_and_clear(&queue, &name).await;
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
