#!/usr/bin/env bash
# Runs the per-read benchmarks in one go against a throwaway cluster, each
# reporting ratios against a baseline measured in the same run, in several
# runs with their spread and the machine's load:
#   bench/run.sh [ITERATIONS [RUNS]]      (defaults 10000 reads per variant, 3 runs)
# Needs a build (scripts/build.sh build); WR_BUILD_DIR picks another one.
# The workload comparison (walrouter vs time pinning, naive splitting and
# Pgpool-II) is bench/workload/run.sh.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
iters=${1:-10000}
runs=${2:-3}
build=${WR_BUILD_DIR:-$top/build}
[[ $build == /* ]] || build="$top/$build"
export WR_CLUSTER_DIR=${WR_CLUSTER_DIR:-/tmp/walrouter-bench-cluster}
export WR_BASE_PORT=${WR_BASE_PORT:-25600}
export WR_CLUSTER_SH="$top/tests/cluster.sh"
trap '"$WR_CLUSTER_SH" stop >/dev/null 2>&1 || true' EXIT INT TERM
"$WR_CLUSTER_SH" start >/dev/null
p0=$("$WR_CLUSTER_SH" port 0); p1=$("$WR_CLUSTER_SH" port 1)
# A primary and ONE replica, so every variant reads the same replica.
export WR_BENCH_DSN="postgresql://walrouter:walrouter-secret@127.0.0.1:$p0,127.0.0.1:$p1/walrouter"
"$WR_CLUSTER_SH" wait-replay 1 >&2
# Same placement for every variant: each variant reads through its own backend
# on the replica, and on 2 CPUs whether a backend shares the client's CPU moves
# its latency by up to 25 %, by the luck of the scheduler. So the replica's
# postmaster (whose backends, forked later, inherit it) gets the last CPU and
# the clients the first one: every backend is a cross-CPU round trip alike.
pin=()
if (($(nproc) >= 2)) && command -v taskset >/dev/null; then
  last=$(($(nproc) - 1))
  for pid in $("$WR_CLUSTER_SH" pids 1); do taskset -pc "$last" "$pid" >/dev/null; done
  pin=(taskset -c 0)
  echo "== clients on CPU 0, the replica (node1) on CPU $last"
fi
echo "== $(date -u +%FT%TZ) $(nproc) CPUs, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== one read decision (no I/O)"
"${pin[@]}" "$build/bench/bench_decide"
echo "== C: replica read through walrouter vs raw libpq ($runs runs)"
"${pin[@]}" "$build/bench/bench_read" "$WR_BENCH_DSN" "$iters" "$runs"
echo "== C: reads while a replica is frozen vs healthy (all three nodes)"
"$build/bench/bench_fault" "$("$WR_CLUSTER_SH" uri)" 2000 3
for run in $(seq 1 "$runs"); do
  echo "== Lua: walrouter vs LuaSQL, run $run/$runs, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;;" LUA_CPATH="$build/lua/?.so;;" \
    "${pin[@]}" lua5.4 "$top/bench/bench_lua.lua" "$WR_BENCH_DSN" "$iters"
done
for run in $(seq 1 "$runs"); do
  echo "== Python: walrouter vs psycopg2 and psycopg 3, run $run/$runs, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  PYTHONPATH="$build/python" "${pin[@]}" /usr/bin/python3 "$top/bench/bench_python.py" "$WR_BENCH_DSN" "$iters"
done
echo "== done $(date -u +%FT%TZ), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
