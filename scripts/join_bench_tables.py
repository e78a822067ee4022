#!/usr/bin/env python3
"""Joins the in-process bench's TSV (cargo bench -p airlock --bench
in_process_table with AIRLOCK_BENCH_FORMAT=tsv) with airlock_py_bench.py's on
their shared workload ids, and prints one markdown table side by side.

Usage: join_bench_tables.py RUST.tsv PY.tsv [--title TEXT]

Stdlib only: scripts/compare-airlock-py.sh runs it with the system python3.
"""

import argparse
import re
import statistics
import sys

# Rows the Python side prints that have no Rust row of their own, and the Rust
# row each one is read against.
PY_ONLY = {"in_process_100000_task_scopes": "in_process_100000"}


def read_tsv(path):
    """{id: (airlock, floor, direct, note)} in file order, plus '#' lines."""
    rows, comments = {}, []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#"):
                comments.append(line.lstrip("# "))
                continue
            fields = line.split("\t")
            # Anything else cargo or a warning might print has no tabs.
            if len(fields) < 3 or fields[0] == "workload":
                continue
            fields += [""] * (5 - len(fields))
            rows[fields[0]] = tuple(fields[1:5])
    return rows, comments


def num(text):
    try:
        return float(text)
    except ValueError:
        return None


def label(workload):
    """The Rust table's wording for an id (the id itself if unknown, so a row
    the Rust side adds later still shows up)."""
    patterns = [
        (r"in_process_(\d+)_task_scopes", "enqueue + flush, in-process, N = {}, airlock-py tasks in own scope [^task]"),
        (r"in_process_(\d+)", "enqueue + flush, in-process, N = {}"),
        (r"drop_all_(\d+)", "enqueue + flush, DropAll, N = {}"),
        (r"block_half_(\d+)", "enqueue + flush, BlockTasks half, N = {} [^block]"),
        (r"scopes_10000x10", "10,000 scopes × 10 intents"),
        (r"nested_depth_(\d+)", "nesting depth {}, 1,000 intents innermost [^nest]"),
        (r"async_per_poll", "async scope overhead, ns per poll"),
        (r"memory_per_intent_bytes", "memory, bytes per buffered intent [^mem]"),
    ]
    for pattern, text in patterns:
        m = re.fullmatch(pattern, workload)
        if m:
            return text.format(*(f"{int(g):,}" for g in m.groups()))
    return workload


def fmt(value, unit=""):
    if value is None:
        return "—"
    return f"{value:,.0f}{unit}" if value >= 100 else f"{value:.1f}{unit}"


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def fmt_ratio(value):
    return "—" if value is None else f"{value:,.1f}×"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("rust")
    parser.add_argument("py")
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    rust, rust_comments = read_tsv(args.rust)
    py, py_comments = read_tsv(args.py)
    if not rust or not py:
        sys.exit(f"join_bench_tables: no rows in {args.rust if not rust else args.py}")

    if args.title:
        print(args.title)
    for comment in rust_comments + py_comments:
        print(f"- {comment}")
    print()
    print("| workload | airlock (Rust) ns/intent | airlock-py ns/intent | speed-up (py/rust) | Rust ÷ its floor | py ÷ its floor |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")

    speedups = []
    missing = False  # whether some cell is "—", to explain it only then
    order = list(rust) + [w for w in py if w not in rust]
    for workload in order:
        r = tuple(num(x) for x in rust.get(workload, ("", "", "", ""))[:3])
        p_fields = py.get(workload, ("", "", "", ""))
        p = tuple(num(x) for x in p_fields[:3])
        if workload in PY_ONLY:
            # Read against the Rust row doing the same work.
            r = tuple(num(x) for x in rust.get(PY_ONLY[workload], ("", "", "", ""))[:3])
        if workload == "async_per_poll":
            # Rust reports scoped and plain ns per poll; the overhead is the gap.
            overhead = None if r[0] is None or r[1] is None else r[0] - r[1]
            if p_fields[0] == "n/a":
                py_cell = "n/a [^async]"
            else:
                py_cell = fmt(None if p[0] is None or p[1] is None else p[0] - p[1])
            print(f"| {label(workload)} | {fmt(overhead)} | {py_cell} | — | — | — |")
            continue
        speedup = ratio(p[0], r[0])
        is_bytes = workload.endswith("_bytes")
        if speedup is not None and not is_bytes and workload not in PY_ONLY:
            speedups.append((speedup, workload))
        py_cell = "n/a" if p_fields[0] == "n/a" else fmt(p[0])
        missing = missing or r[0] is None or (p[0] is None and p_fields[0] != "n/a")
        print(
            f"| {label(workload)} | {fmt(r[0])} | {py_cell} | "
            f"{fmt_ratio(speedup)}{' less' if is_bytes and speedup else ''} | "
            f"{fmt_ratio(ratio(r[0], r[1]))} | {fmt_ratio(ratio(p[0], p[1]))} |"
        )

    print()
    if speedups:
        values = sorted(s for s, _ in speedups)
        low, high = min(speedups), max(speedups)
        print(
            f"**airlock is {statistics.median(values):.0f}× faster than airlock-py (median of "
            f"{len(values)} ns/intent rows; range {low[0]:.0f}× on {low[1]} "
            f"to {high[0]:.0f}× on {high[1]}).**"
        )
        print()
    print(
        "Floors, measured in the same run: Rust `Vec<Box<dyn FnOnce()>>` pushed then "
        "called; Python a list of lambdas appended then called."
        + (
            " — : not measured on that side in this run (`--quick` skips "
            "N = 1,000,000 on the Python side)."
            if missing
            else ""
        )
    )
    print()
    print(
        "[^task]: airlock's in-process executor runs every task inside its own "
        "scope (worker semantics) and catches panics; airlock-py's default executor "
        "calls the task bare, so the default rows give airlock-py less work. This row "
        "gives it the same work through a custom executor (`executor=`), read against "
        "Rust's default row at the same N."
    )
    print(
        "[^block]: airlock-py's `BlockTasks` matches the task's name (a string "
        "derived per intent at flush); airlock's compares the task's registered name "
        "(a static string every intent carries) with a short sorted list."
    )
    print(
        "[^nest]: both capture a nested scope's intents into its parent and dispatch "
        "them at the outermost scope (the default in both); airlock-py walks the whole "
        "ancestor chain each time an inner scope exits."
    )
    print(
        "[^async]: airlock-py has no async scope: a `with airlock.scope()` inside a "
        "coroutine sets one contextvar for the task's whole life, so there is no "
        "per-poll step to compare."
    )
    print(
        "[^mem]: allocator bytes still held per intent while buffered (Rust: a "
        "counting global allocator; Python: tracemalloc). The Python figures include "
        "the int object each intent (or lambda) keeps alive; Rust's u64 is inline. "
        "The speed-up column here is how many times less memory airlock holds."
    )


if __name__ == "__main__":
    main()
