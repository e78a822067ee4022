//! Enqueue + flush cost per intent, against same-run baselines.
//!
//! Run: `cargo bench -p airlock --bench enqueue_flush`
//!
//! Each group runs N intents through:
//! * `direct`: calling the task function N times (no buffering at all);
//! * `vec_of_closures`: the floor for buffering: push N `Box<dyn FnOnce()>`
//!   into a `Vec`, then call them in order;
//! * `airlock_in_process`: a scope, N `enqueue`s, flush with the in-process
//!   executor (each task runs inside its own scope, as on a worker);
//! * `airlock_drop_all`: the same with `DropAll` (buffer + filter, no dispatch).

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use airlock::{DropAll, Scope};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

static SINK: AtomicU64 = AtomicU64::new(0);

#[airlock::task]
fn bump(value: u64) {
    SINK.fetch_add(black_box(value), Ordering::Relaxed);
}

fn enqueue_flush(c: &mut Criterion) {
    let mut group = c.benchmark_group("enqueue_flush");
    for n in [1_000_u64, 100_000] {
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::new("direct", n), &n, |b, &n| {
            b.iter(|| {
                for i in 0..n {
                    bump(black_box(i));
                }
            });
        });
        group.bench_with_input(BenchmarkId::new("vec_of_closures", n), &n, |b, &n| {
            b.iter(|| {
                let mut buffer: Vec<Box<dyn FnOnce()>> = Vec::new();
                for i in 0..n {
                    let value = black_box(i);
                    buffer.push(Box::new(move || bump(value)));
                }
                for effect in buffer {
                    effect();
                }
            });
        });
        group.bench_with_input(BenchmarkId::new("airlock_in_process", n), &n, |b, &n| {
            b.iter(|| {
                airlock::scope(|| {
                    for i in 0..n {
                        bump::enqueue(black_box(i))?;
                    }
                    Ok::<(), airlock::Error>(())
                })
                .expect("flush succeeds");
            });
        });
        group.bench_with_input(BenchmarkId::new("airlock_drop_all", n), &n, |b, &n| {
            b.iter(|| {
                Scope::new()
                    .policy(DropAll)
                    .run(|| {
                        for i in 0..n {
                            bump::enqueue(black_box(i))?;
                        }
                        Ok::<(), airlock::Error>(())
                    })
                    .expect("flush succeeds");
            });
        });
    }
    group.finish();
}

fn scope_setup(c: &mut Criterion) {
    let mut group = c.benchmark_group("scope_setup");
    group.throughput(Throughput::Elements(10));
    group.bench_function("scope_with_10_intents", |b| {
        b.iter(|| {
            airlock::scope(|| {
                for i in 0..10 {
                    bump::enqueue(black_box(i))?;
                }
                Ok::<(), airlock::Error>(())
            })
            .expect("flush succeeds");
        });
    });
    group.bench_function("empty_scope", |b| {
        b.iter(|| airlock::scope(|| Ok::<(), airlock::Error>(())).expect("flush succeeds"));
    });
    group.finish();
}

criterion_group!(benches, enqueue_flush, scope_setup);
criterion_main!(benches);
