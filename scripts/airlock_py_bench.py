#!/usr/bin/env python3
"""airlock-py's side of the in-process comparison (issue 5).

Runs the workloads of airlock/benches/in_process_table.rs against the Python
library airlock-py (pinned by scripts/compare-airlock-py.sh), with the same N
values, the same task shape (a trivial task adding its argument to a counter)
and the same method: one warm-up run, then the fastest of R rounds timed with
time.perf_counter_ns. Each row also carries this run's Python floor (a list of
closures appended, then called) and direct calls, so the Python numbers can be
judged against what CPython itself costs, as the Rust table does for Rust.

Output is TSV on stdout, one row per workload under the ids the Rust bench
prints with AIRLOCK_BENCH_FORMAT=tsv:

    workload  airlock_ns  floor_ns  direct_ns  note

"n/a" marks a workload airlock-py has no equivalent for (the note says why).
Lines starting with "#" carry versions. Only airlock-py's documented public API
is used (airlock.scope, airlock.enqueue, DropAll, BlockTasks, Scope.enter/exit/
discard, the executor= argument); stdlib only otherwise.

Usage: airlock_py_bench.py [--quick] [--rounds R] [--no-gc]
"""

import argparse
import gc
import math
import os
import platform
import sys
import time
import tracemalloc
from importlib.metadata import version

import airlock

FULL_NS = (1_000, 100_000, 1_000_000)
# --quick drops N = 1M: airlock-py takes seconds per round there, and the
# 1k/100k rows already show the per-intent cost (it is flat in N for Python).
QUICK_NS = (1_000, 100_000)

SINK = 0


# The task shape of the Rust bench: add the argument to a counter. A module
# global is the cheapest Python counter (the Rust side uses an AtomicU64).
def bump(value):
    global SINK
    SINK += value


# A second task with the same body, so BlockTasks has something to block by name
# (airlock-py's BlockTasks matches the task's __name__).
def skipped(value):
    global SINK
    SINK += value


# ---------------------------------------------------------------- baselines


def floor(n):
    # The least a hand-written buffer does: keep a callable per effect, then
    # call them in order. A default argument binds the value now, as Rust's
    # `move` closure does (a plain closure over `i` would see its last value).
    buffer = []
    for i in range(n):
        buffer.append(lambda value=i: bump(value))
    for effect in buffer:
        effect()


def direct(n):
    for i in range(n):
        bump(i)


# ---------------------------------------------------------------- workloads


def in_process(n):
    # airlock-py's default scope: AllowAll policy, synchronous executor that
    # calls the task when the scope exits successfully.
    with airlock.scope():
        for i in range(n):
            airlock.enqueue(bump, i)


def drop_all(n):
    with airlock.scope(policy=airlock.DropAll()):
        for i in range(n):
            airlock.enqueue(bump, i)


BLOCK_SKIPPED = airlock.BlockTasks({"skipped"})


def block_half(n):
    with airlock.scope(policy=BLOCK_SKIPPED):
        for i in range(n):
            if i % 2 == 0:
                airlock.enqueue(bump, i)
            else:
                airlock.enqueue(skipped, i)


def many_scopes(scopes, per_scope):
    for _ in range(scopes):
        in_process(per_scope)


def nested(depth, n):
    # airlock-py's default nesting matches airlock's: an inner scope's flush
    # hands its intents to its parent (before_descendant_flushes returns []),
    # and the outermost scope dispatches them.
    if depth == 0:
        for i in range(n):
            airlock.enqueue(bump, i)
        return
    with airlock.scope():
        nested(depth - 1, n)


def run_in_own_scope(intent):
    # An executor (airlock-py's public Executor protocol) with the Rust
    # InProcess executor's worker semantics: each task runs inside its own
    # scope, so whatever it enqueues is dispatched when it succeeds.
    with airlock.scope():
        intent.task(*intent.args, **intent.kwargs)


def in_process_task_scopes(n):
    with airlock.scope(executor=run_in_own_scope):
        for i in range(n):
            airlock.enqueue(bump, i)


def check_semantics():
    """Fails loudly if a workload stops doing the work the Rust one does
    (every intent dispatched, none, half, nested ones at the outermost scope)."""
    global SINK
    n = 100
    everything = n * (n - 1) // 2
    evens = sum(range(0, n, 2))
    for name, run, want in [
        ("in_process", lambda: in_process(n), everything),
        ("drop_all", lambda: drop_all(n), 0),
        ("block_half", lambda: block_half(n), evens),
        ("scopes", lambda: many_scopes(10, n), 10 * everything),
        ("nested_depth_10", lambda: nested(10, n), everything),
        ("task_scopes", lambda: in_process_task_scopes(n), everything),
        ("floor", lambda: floor(n), everything),
        ("direct", lambda: direct(n), everything),
    ]:
        SINK = 0
        run()
        if SINK != want:
            sys.exit(f"airlock_py_bench: {name} dispatched a sum of {SINK}, expected {want}")
    # Nested intents must wait for the outermost scope, as in airlock.
    SINK = 0
    with airlock.scope():
        nested(1, n)
        if SINK != 0:
            sys.exit("airlock_py_bench: a nested scope dispatched before its parent exited")
    if SINK != everything:
        sys.exit("airlock_py_bench: the outermost scope did not dispatch nested intents")


# ---------------------------------------------------------------- measuring


def ns_per(per, run, rounds):
    """Fastest of `rounds` runs of `run`, in ns per `per` items (as ns_per in
    the Rust bench, including its one untimed warm-up run)."""
    run()
    best = math.inf
    for _ in range(rounds):
        # Collect the previous round's leftovers now, so a round is not billed
        # for them; collections the round itself triggers stay in (users pay
        # those too) unless --no-gc.
        gc.collect()
        start = time.perf_counter_ns()
        run()
        best = min(best, (time.perf_counter_ns() - start) / per)
    return best


def bytes_per_buffered_intent(n):
    # Bytes still held per intent while buffered, as the Rust bench counts
    # allocator bytes around the enqueue loop of an already-started scope.
    # tracemalloc counts requested sizes like Rust's allocator hook does.
    active = airlock.Scope(policy=airlock.AllowAll())
    active.enter()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(n):
        airlock.enqueue(bump, i)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    active.exit()
    active.discard()
    return (after - before) / n


def bytes_per_closure(n):
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    buffer = []
    for i in range(n):
        buffer.append(lambda value=i: bump(value))
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del buffer
    return (after - before) / n


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip N = 1,000,000 and default to 3 rounds")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="rounds per measurement, fastest kept (default: $AIRLOCK_BENCH_ROUNDS, else 5; 3 with --quick)",
    )
    parser.add_argument("--no-gc", action="store_true", help="disable the cyclic GC while measuring")
    args = parser.parse_args()
    rounds = args.rounds or int(os.environ.get("AIRLOCK_BENCH_ROUNDS") or (3 if args.quick else 5))
    sizes = QUICK_NS if args.quick else FULL_NS

    check_semantics()
    if args.no_gc:
        gc.disable()

    print(f"# airlock-py {version('airlock-py')} on {platform.python_implementation()} {platform.python_version()}")
    print(f"# rounds {rounds}, gc {'off' if args.no_gc else 'on'}")
    print("workload\tairlock_ns\tfloor_ns\tdirect_ns\tnote")

    def row(workload, airlock_ns, floor_ns, direct_ns, note=""):
        print(f"{workload}\t{airlock_ns:.2f}\t{floor_ns:.2f}\t{direct_ns:.2f}\t{note}", flush=True)

    for n in sizes:
        f = ns_per(n, lambda: floor(n), rounds)
        d = ns_per(n, lambda: direct(n), rounds)
        row(f"in_process_{n}", ns_per(n, lambda: in_process(n), rounds), f, d)
        row(f"drop_all_{n}", ns_per(n, lambda: drop_all(n), rounds), f, d)
        row(f"block_half_{n}", ns_per(n, lambda: block_half(n), rounds), f, d)

    f = ns_per(100_000, lambda: [floor(10) for _ in range(10_000)], rounds)
    d = ns_per(100_000, lambda: direct(100_000), rounds)
    row("scopes_10000x10", ns_per(100_000, lambda: many_scopes(10_000, 10), rounds), f, d)

    f = ns_per(1_000, lambda: floor(1_000), rounds)
    d = ns_per(1_000, lambda: direct(1_000), rounds)
    for depth in (1, 10):
        row(f"nested_depth_{depth}", ns_per(1_000, lambda: nested(depth, 1_000), rounds), f, d)

    print(
        "async_per_poll\tn/a\tn/a\t\tairlock-py has no async scope to poll: "
        "a `with airlock.scope()` inside a coroutine is one contextvar set for the "
        "task's whole life, so there is no per-poll step to compare"
    )

    # Not a Rust row: the default in-process rows above use airlock-py's
    # default executor, which calls the task bare; Rust's InProcess runs each
    # task inside its own scope. This row prices that extra work in Python.
    n = 100_000
    f = ns_per(n, lambda: floor(n), rounds)
    d = ns_per(n, lambda: direct(n), rounds)
    row(
        f"in_process_{n}_task_scopes",
        ns_per(n, lambda: in_process_task_scopes(n), rounds),
        f,
        d,
        "each task run in its own scope by a custom executor, as airlock's InProcess does",
    )

    gc.enable()
    gc.collect()
    print(
        f"memory_per_intent_bytes\t{bytes_per_buffered_intent(100_000):.1f}\t"
        f"{bytes_per_closure(100_000):.1f}\t\tbytes held per buffered intent (tracemalloc)"
    )


if __name__ == "__main__":
    main()
