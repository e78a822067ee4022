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

mod queue_common;

use queue_common::{airlock_payloads, bump, envelope, report, rounds, summary, LABELS, N, WARM_UP};

use std::time::Instant;

use airlock::queue::apalis::prelude::{TaskBuilder, TaskSink};
use airlock::queue::PostgresQueue;
use airlock::Scope;

const URL_VAR: &str = "AIRLOCK_POSTGRES_URL";

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
            let payloads = airlock_payloads(Some(&name));
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
