#!/usr/bin/env bash
# Runs every benchmark in one go against a throwaway cluster, each reporting
# ratios against a baseline measured in the same run: bench/run.sh [ITERATIONS]
# (needs a build in build/: scripts/build.sh build).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
iters=${1:-10000}
export WR_CLUSTER_DIR=${WR_CLUSTER_DIR:-/tmp/walrouter-bench-cluster}
export WR_BASE_PORT=${WR_BASE_PORT:-25730}
export WR_CLUSTER_SH="$top/tests/cluster.sh"
trap '"$WR_CLUSTER_SH" stop >/dev/null 2>&1 || true' EXIT INT TERM
"$WR_CLUSTER_SH" start >/dev/null
p0=$("$WR_CLUSTER_SH" port 0); p1=$("$WR_CLUSTER_SH" port 1)
# A primary and ONE replica, so every variant reads the same replica.
export WR_BENCH_DSN="postgresql://walrouter:walrouter-secret@127.0.0.1:$p0,127.0.0.1:$p1/walrouter"
echo "== one read decision (no I/O)"
"$top/build/bench/bench_decide"
echo "== C: replica read through walrouter vs raw libpq"
"$top/build/bench/bench_read" "$WR_BENCH_DSN" "$iters"
echo "== C: reads while a replica is frozen vs healthy (all three nodes)"
"$top/build/bench/bench_fault" "$("$WR_CLUSTER_SH" uri)" 2000 3
if [ -f "$top/bench/bench_lua.lua" ]; then
  echo "== Lua: walrouter vs LuaSQL"
  LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;;" LUA_CPATH="$top/build/lua/?.so;;" \
    lua5.4 "$top/bench/bench_lua.lua" "$WR_BENCH_DSN" "$iters"
fi
if [ -f "$top/bench/bench_python.py" ]; then
  echo "== Python: walrouter vs psycopg2 and psycopg 3"
  PYTHONPATH="$top/build/python" /usr/bin/python3 "$top/bench/bench_python.py" "$WR_BENCH_DSN" "$iters"
fi
