#!/usr/bin/env bash
# Runs the in-process workloads of airlock/benches/in_process_table.rs on both
# airlock (Rust) and the Python library airlock-py, and prints one markdown
# table side by side, so "N× faster than airlock-py" can be re-measured by
# anyone (issue 5). airlock-py is pip-installed, pinned, into a throwaway
# virtualenv that is removed on exit.
#
# Usage: scripts/compare-airlock-py.sh [--quick]
#   (default)  N = 1k, 100k, 1M; fastest of 5 rounds: the numbers the README quotes
#   --quick    skips N = 1M on the Python side and keeps the fastest of 3 rounds
#              (a smoke run for CI; the Rust bench still needs a release build)
# AIRLOCK_BENCH_ROUNDS=N overrides the rounds on both sides; PYTHON picks the
# interpreter (default python3, 3.10 or newer, with the venv module).
set -euo pipefail
cd "$(dirname "$0")/.."

# The version the published comparison was measured against; bump it
# deliberately, re-measure, and update the README with it.
AIRLOCK_PY_VERSION=0.1.0a3

quick=""
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    -h | --help)
      sed -n '2,14s/^# \{0,1\}//p' "$0"
      exit 0
      ;;
    *)
      echo "compare-airlock-py: unknown argument '$arg' (try --help)" >&2
      exit 2
      ;;
  esac
done

die() {
  echo "compare-airlock-py: $*" >&2
  exit 1
}

python="${PYTHON:-python3}"
command -v "$python" >/dev/null 2>&1 || die "needs $python (CPython 3.10 or newer) on PATH"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
  die "$python is $("$python" --version 2>&1); airlock-py needs 3.10 or newer"
# Debian splits venv/ensurepip into python3-venv; without it `-m venv` fails
# halfway with a message about ensurepip.
"$python" -c 'import venv, ensurepip' >/dev/null 2>&1 ||
  die "$python has no working venv module (Debian/Ubuntu: apt-get install python3-venv)"
command -v cargo >/dev/null 2>&1 || die "needs cargo on PATH"

work="$(mktemp -d "${TMPDIR:-/tmp}/airlock-pycompare.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "compare-airlock-py: installing airlock-py==$AIRLOCK_PY_VERSION into a throwaway venv" >&2
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "airlock-py==$AIRLOCK_PY_VERSION"

# Both sides read AIRLOCK_BENCH_ROUNDS; --quick only lowers the default.
if [ -n "$quick" ]; then
  export AIRLOCK_BENCH_ROUNDS="${AIRLOCK_BENCH_ROUNDS:-3}"
fi

# Build first, so compiling never overlaps a measurement; then run the two
# sides one after the other (never concurrently: 2 cores).
echo "compare-airlock-py: building the Rust bench (release)" >&2
cargo bench -q -p airlock --all-features --bench in_process_table --bench in_process_memory --no-run

load="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
echo "compare-airlock-py: running airlock-py's side" >&2
"$work/venv/bin/python" scripts/airlock_py_bench.py ${quick:+--quick} >"$work/py.tsv"
echo "compare-airlock-py: running airlock's side" >&2
AIRLOCK_BENCH_FORMAT=tsv cargo bench -q -p airlock --all-features --bench in_process_table --bench in_process_memory >"$work/rust.tsv"

title="## airlock (Rust, $(git rev-parse --short HEAD 2>/dev/null || echo 'no git'), $(rustc --version | cut -d' ' -f1-2)) vs airlock-py${quick:+ (--quick)}"
"$python" scripts/join_bench_tables.py "$work/rust.tsv" "$work/py.tsv" \
  --title "$title
- machine: $(nproc) cores, load average $load at start"
