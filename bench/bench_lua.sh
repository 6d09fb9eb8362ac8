#!/usr/bin/env bash
# Runs bench/bench_lua.lua against the cluster of tests/cluster.sh, with a DSN
# naming the primary and ONE replica (node 1):
#   bench/bench_lua.sh [iterations]        (WR_CLUSTER_DIR as for cluster.sh)
# Uses the installed module if lua5.4 finds it, else the build tree
# (WR_BUILD_DIR, default build/).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
sh=${WR_CLUSTER_SH:-$top/tests/cluster.sh}
uri=$("$sh" uri)
p0=$("$sh" port 0) p1=$("$sh" port 1)
dsn=$(printf '%s' "$uri" | sed -E "s#@[^/]+/#@127.0.0.1:$p0,127.0.0.1:$p1/#")
if ! lua5.4 -e 'require "walrouter"' 2>/dev/null; then
  build=${WR_BUILD_DIR:-$top/build}
  [[ $build == /* ]] || build="$top/$build"
  export LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;;" LUA_CPATH="$build/lua/?.so;;"
fi
"$sh" wait-replay 1 >&2
exec lua5.4 "$top/bench/bench_lua.lua" "$dsn" "${1:-10000}"
