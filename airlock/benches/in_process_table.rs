//! The in-process suite as one quick table: ns per intent for airlock and, in
//! the same run, for the floor (a `Vec<Box<dyn FnOnce()>>` pushed then called)
//! and for direct calls; plus the async scope's overhead per poll. Rows that
//! share a floor workload (every N = 1,000 row runs `floor(1_000)`) all use
//! its fastest time in the run, so a row whose floor happened to run slow
//! (the allocator's state moves it by up to half) does not look better.
//!
//! Run: `cargo bench -p airlock --bench in_process_table --bench in_process_memory`
//! (the second prints bytes per buffered intent; it is a binary of its own
//! because counting allocations slows every allocation, which would flatter
//! the ratios here by adding the same cost to airlock and the floor).
//! (`AIRLOCK_BENCH_ROUNDS=N` repeats each measurement N times and keeps the
//! fastest; the default is 5). `AIRLOCK_BENCH_FORMAT=tsv` prints tab-separated
//! `workload airlock_ns floor_ns direct_ns` rows under stable workload ids
//! instead, for `scripts/compare-airlock-py.sh` to join with airlock-py's.
//!
//! For statistically careful numbers use the criterion suite
//! (`cargo bench -p airlock --bench enqueue_flush`); this one trades rigour
//! for a readable overview in a few seconds.

#![allow(missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use airlock::{BlockTasks, DropAll, Scope};

static SINK: AtomicU64 = AtomicU64::new(0);

#[airlock::task]
fn bump(value: u64) {
    SINK.fetch_add(black_box(value), Ordering::Relaxed);
}

#[airlock::task]
fn skipped(value: u64) {
    SINK.fetch_add(black_box(value), Ordering::Relaxed);
}

fn rounds() -> usize {
    std::env::var("AIRLOCK_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// Fastest of `rounds()` runs of `f`, in ns per `per` items.
fn ns_per(per: u64, mut f: impl FnMut()) -> f64 {
    f(); // warm up
    (0..rounds())
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_nanos() as f64 / per as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// Fastest of `rounds()` runs of each of `airlock`, `floor` and `direct`, in
/// ns per item when each call handles `per` items. The three are interleaved
/// round by round, so a slow stretch of the machine (or of the allocator)
/// hits all of them alike; each round repeats a call until it has handled at
/// least 100,000 items, so short workloads are not at the timer's mercy.
fn race(
    per: u64,
    mut airlock: impl FnMut(),
    mut floor: impl FnMut(),
    mut direct: impl FnMut(),
) -> (f64, f64, f64) {
    let reps = (100_000 / per).max(1);
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..reps {
            f();
        }
        start.elapsed().as_nanos() as f64 / (per * reps) as f64
    };
    airlock();
    floor();
    direct(); // warm up
    let mut best = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
    for _ in 0..rounds() {
        best.0 = best.0.min(time(&mut airlock));
        best.1 = best.1.min(time(&mut floor));
        best.2 = best.2.min(time(&mut direct));
    }
    best
}

fn floor(n: u64) {
    let mut buffer: Vec<Box<dyn FnOnce()>> = Vec::new();
    for i in 0..n {
        let value = black_box(i);
        buffer.push(Box::new(move || bump(value)));
    }
    for effect in buffer {
        effect();
    }
}

fn direct(n: u64) {
    for i in 0..n {
        bump(black_box(i));
    }
}

fn in_process(n: u64) {
    airlock::scope(|| {
        for i in 0..n {
            bump::enqueue(black_box(i))?;
        }
        Ok::<(), airlock::Error>(())
    })
    .expect("flush succeeds");
}

fn drop_all(n: u64) {
    Scope::new()
        .policy(DropAll)
        .run(|| {
            for i in 0..n {
                bump::enqueue(black_box(i))?;
            }
            Ok::<(), airlock::Error>(())
        })
        .expect("flush succeeds");
}

fn block_half(n: u64) {
    Scope::new()
        .policy(BlockTasks::of(&[skipped::TASK]))
        .run(|| {
            for i in 0..n {
                if i % 2 == 0 {
                    bump::enqueue(black_box(i))?;
                } else {
                    skipped::enqueue(black_box(i))?;
                }
            }
            Ok::<(), airlock::Error>(())
        })
        .expect("flush succeeds");
}

fn many_scopes(scopes: u64, per_scope: u64) {
    for _ in 0..scopes {
        in_process(per_scope);
    }
}

fn nested(depth: u32, n: u64) {
    if depth == 0 {
        for i in 0..n {
            bump::enqueue(black_box(i)).expect("inside a scope");
        }
        return;
    }
    airlock::scope(|| {
        nested(depth - 1, n);
        Ok::<(), airlock::Error>(())
    })
    .expect("flush succeeds");
}

/// Polls `future` to completion on this thread (the futures here never wait
/// on I/O; they yield to count polls).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

/// A future that is pending `polls - 1` times, then ready.
async fn yield_times(polls: u64) {
    let mut left = polls;
    std::future::poll_fn(|_| {
        left -= 1;
        if left == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// Whether to print machine-readable rows (see the module docs).
fn tsv() -> bool {
    std::env::var("AIRLOCK_BENCH_FORMAT").is_ok_and(|v| v == "tsv")
}

fn header() {
    if tsv() {
        println!("workload\tairlock_ns\tfloor_ns\tdirect_ns");
        return;
    }
    println!("| workload (ns per intent)                     |   airlock |     floor |  ratio |  direct |");
    println!("| -------------------------------------------- | --------: | --------: | -----: | ------: |");
}

/// One measured row. `floor_of` names the floor workload it was raced
/// against: several rows share one (the same `floor(1_000)`).
struct Row {
    id: String,
    workload: String,
    floor_of: &'static str,
    airlock_ns: f64,
    floor_ns: f64,
    direct_ns: f64,
}

/// Prints the rows; `id` is the stable name scripts join on
/// (scripts/airlock_py_bench.py prints the same ids), `workload` the label
/// people read. Each row's floor is the fastest time its floor workload had
/// anywhere in the run: the floor is the same code in every row that shares
/// it, yet the allocator's state (left by whatever ran before) can slow it
/// by half in one row and not another, which would flatter that row's ratio.
fn print(rows: &[Row]) {
    header();
    for row in rows {
        let floor_ns = rows
            .iter()
            .filter(|other| other.floor_of == row.floor_of)
            .map(|other| other.floor_ns)
            .fold(f64::INFINITY, f64::min);
        let (id, airlock_ns, direct_ns) = (&row.id, row.airlock_ns, row.direct_ns);
        if tsv() {
            println!("{id}\t{airlock_ns:.2}\t{floor_ns:.2}\t{direct_ns:.2}");
            continue;
        }
        println!(
            "| {:<44} | {airlock_ns:>9.1} | {floor_ns:>9.1} | {:>6.1}x | {direct_ns:>7.1} |",
            row.workload,
            airlock_ns / floor_ns
        );
    }
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent; keep that cheap.
    if !std::env::args().any(|a| a == "--bench") {
        in_process(10);
        return;
    }
    let mut rows = Vec::new();
    let mut row = |id: String, workload: String, floor_of, (a, f, d): (f64, f64, f64)| {
        rows.push(Row {
            id,
            workload,
            floor_of,
            airlock_ns: a,
            floor_ns: f,
            direct_ns: d,
        });
    };
    for (n, floor_of) in [
        (1_000_u64, "floor(1_000)"),
        (100_000, "floor(100_000)"),
        (1_000_000, "floor(1_000_000)"),
    ] {
        row(
            format!("in_process_{n}"),
            format!("enqueue + flush, in-process, N = {n}"),
            floor_of,
            race(n, || in_process(n), || floor(n), || direct(n)),
        );
        row(
            format!("drop_all_{n}"),
            format!("enqueue + flush, DropAll, N = {n}"),
            floor_of,
            race(n, || drop_all(n), || floor(n), || direct(n)),
        );
        row(
            format!("block_half_{n}"),
            format!("enqueue + flush, BlockTasks half, N = {n}"),
            floor_of,
            race(n, || block_half(n), || floor(n), || direct(n)),
        );
    }
    row(
        "scopes_10000x10".into(),
        "10,000 scopes x 10 intents".into(),
        "10,000 x floor(10)",
        race(
            100_000,
            || many_scopes(10_000, 10),
            || {
                for _ in 0..10_000 {
                    floor(10);
                }
            },
            || direct(100_000),
        ),
    );
    for depth in [1_u32, 10] {
        row(
            format!("nested_depth_{depth}"),
            format!("nesting depth {depth}, 1,000 intents innermost"),
            "floor(1_000)",
            race(
                1_000,
                || nested(depth, 1_000),
                || floor(1_000),
                || direct(1_000),
            ),
        );
    }
    print(&rows);

    let polls = 1_000_u64;
    let plain = ns_per(polls, || block_on(yield_times(polls)));
    let scoped = ns_per(polls, || {
        block_on(airlock::scope_async(async {
            yield_times(polls).await;
            Ok::<(), airlock::Error>(())
        }))
        .expect("flush succeeds");
    });
    summary(scoped, plain);
}

/// The figure that is not ns per intent. In TSV it is a row too, ns per poll:
/// scoped in the airlock column, plain in the floor column.
fn summary(scoped: f64, plain: f64) {
    if tsv() {
        println!("async_per_poll\t{scoped:.2}\t{plain:.2}\t");
        return;
    }
    println!();
    println!(
        "async scope overhead per poll: {:.1} ns ({scoped:.1} ns scoped vs {plain:.1} ns plain)",
        scoped - plain
    );
}
