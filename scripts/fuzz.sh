#!/usr/bin/env bash
# Fuzzes the queue worker's decoding of job payloads (airlock/fuzz; see its
# README) with cargo-fuzz on the stable toolchain.
#
#   scripts/fuzz.sh                     every target for 30 s: the CI run
#   FUZZ_SECONDS=600 scripts/fuzz.sh    the long run, 10 min per target
#   FUZZ_RUNS=100000 scripts/fuzz.sh    a fixed number of inputs per target instead
#   scripts/fuzz.sh worker_decode       only the named targets
#
# Installs the pinned cargo-fuzz when it is missing. Each target starts from
# its committed seeds (seeds/<target>) plus the corpus earlier local runs grew
# (corpus/<target>, not committed). Exits non-zero on the first crash, leaving
# the input in airlock/fuzz/artifacts/<target>/.
#
# The instrumented build takes minutes from cold (libFuzzer's C++ runtime and
# every crate, at one codegen unit); a CARGO_TARGET_DIR outside the checkout
# (e.g. ~/.cache/airlock-fuzz) keeps the dependencies between runs. Never
# point it at the workspace's own target dir: the flags differ, and each build
# would evict the other's.
set -euo pipefail
cd "$(dirname "$0")/../airlock/fuzz"

CARGO_FUZZ_VERSION=0.13.2
FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
FUZZ_RUNS="${FUZZ_RUNS:-}"

if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

# No sanitizer: sanitizers need a nightly compiler, and without one cargo-fuzz
# passes no unstable flag, so this builds on stable (release, with debug
# assertions and overflow checks). All targets at once: they share the crates.
cargo fuzz build --sanitizer none

if [ -n "$FUZZ_RUNS" ]; then
  budget=("-runs=$FUZZ_RUNS")
else
  budget=("-max_total_time=$FUZZ_SECONDS")
fi

for target in "${targets[@]}"; do
  echo "=== fuzz $target (${budget[*]})"
  mkdir -p "corpus/$target"
  dirs=("corpus/$target")
  [ -d "seeds/$target" ] && dirs+=("seeds/$target")
  # -malloc_limit_mb only takes effect with a sanitizer's malloc hooks; the
  # targets' own allocator guard enforces the same 64 MiB without one.
  cargo fuzz run --sanitizer none "$target" "${dirs[@]}" -- \
    "${budget[@]}" -rss_limit_mb=256 -malloc_limit_mb=64 -timeout=10 -print_final_stats=1
done
