#!/usr/bin/env bash
# Runs the queue benchmarks (10k-intent flush as one batch vs the engine's own
# bulk push, vs its bulk push of airlock's own envelopes, vs 10k single pushes)
# on SQLite, PostgreSQL and Redis, starting throwaway PostgreSQL and Redis
# servers on loopback from the Debian packages (apt-get install postgresql
# redis-server). Usage: scripts/bench-queues.sh
# AIRLOCK_BENCH_ROUNDS=N sets the rounds; AIRLOCK_BENCH_SKIP_SINGLE=1 leaves
# out the single pushes, which take most of each round, to afford many rounds.
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d /tmp/airlock-bench.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
if [ -n "$pg_bin" ]; then
  port="$(free_port)"
  mkdir -p "$work/pg"
  [ "$(id -u)" = 0 ] && chown postgres "$work" "$work/pg"
  as_pg "$pg_bin/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
  as_pg "$pg_bin/postgres" -D "$work/pg" -p "$port" -k "$work/pg" \
    -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off >"$work/pg.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  export AIRLOCK_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
else
  echo "*** no PostgreSQL binaries: apt-get install postgresql" >&2
fi

if command -v redis-server >/dev/null; then
  port="$(free_port)"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no >"$work/redis.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  export AIRLOCK_REDIS_URL="redis://127.0.0.1:$port"
else
  echo "*** no redis-server: apt-get install redis-server" >&2
fi

for bench in queue_sqlite queue_postgres queue_redis; do
  cargo bench -q -p airlock --all-features --bench "$bench"
done
