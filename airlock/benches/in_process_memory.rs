//! Memory per buffered intent: the bytes requested from the allocator while
//! 100,000 intents are enqueued into an open scope, per intent, beside the
//! floor (the same number of boxed closures pushed into a `Vec`).
//!
//! Run with the time table: `cargo bench -p airlock --bench in_process_table
//! --bench in_process_memory`. It is a separate binary because its counting
//! allocator adds work to every allocation, which must not reach the timings.
//! `AIRLOCK_BENCH_FORMAT=tsv` prints a tab-separated row instead (the `_bytes`
//! suffix of its id says the unit), as `in_process_table` does.

#![allow(missing_docs)]

use std::alloc::System;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use airlock::Scope;
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

// A vetted counting wrapper: this workspace forbids `unsafe` in its own code.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn allocated() -> usize {
    GLOBAL.stats().bytes_allocated
}

static SINK: AtomicU64 = AtomicU64::new(0);

#[airlock::task]
fn bump(value: u64) {
    SINK.fetch_add(black_box(value), Ordering::Relaxed);
}

fn bytes_per_buffered_intent(n: u64) -> f64 {
    let active = Scope::new().start();
    let before = allocated();
    active.in_scope(|| {
        for i in 0..n {
            bump::enqueue(black_box(i)).expect("inside a scope");
        }
    });
    let after = allocated();
    drop(active.into_intents());
    (after - before) as f64 / n as f64
}

fn bytes_per_boxed_closure(n: u64) -> f64 {
    let before = allocated();
    let mut buffer: Vec<Box<dyn FnOnce()>> = Vec::new();
    for i in 0..n {
        let value = black_box(i);
        buffer.push(Box::new(move || bump(value)));
    }
    let after = allocated();
    drop(black_box(buffer));
    (after - before) as f64 / n as f64
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent; keep that cheap.
    let n = if std::env::args().any(|a| a == "--bench") {
        100_000
    } else {
        100
    };
    let bytes = bytes_per_buffered_intent(n);
    let floor = bytes_per_boxed_closure(n);
    if std::env::var("AIRLOCK_BENCH_FORMAT").is_ok_and(|v| v == "tsv") {
        println!("memory_per_intent_bytes\t{bytes:.1}\t{floor:.1}\t");
    } else {
        println!(
            "memory per buffered intent: {bytes:.1} bytes allocated (floor: {floor:.1} bytes per boxed closure)"
        );
    }
}
