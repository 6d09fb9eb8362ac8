#!/usr/bin/env bash
# Runs examples/lua/demo.lua with lua5.4 against the cluster in WR_DSN
# (scripts/demo.sh sets WR_DSN and WR_CLUSTER_SH). Uses the installed
# walrouter module when lua5.4 finds it, else the build tree (WR_BUILD_DIR,
# default build/).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
: "${WR_DSN:?set WR_DSN to the cluster URI (scripts/demo.sh does)}"
if ! lua5.4 -e 'require "walrouter"' >/dev/null 2>&1; then
  build=${WR_BUILD_DIR:-$top/build}
  [[ $build == /* ]] || build="$top/$build"
  [[ -f $build/lua/walrouter/core.so ]] ||
    { echo "demo.sh: walrouter is neither installed nor built in $build (cmake --build $build)" >&2; exit 1; }
  export LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;${LUA_PATH:-;}"
  export LUA_CPATH="$build/lua/?.so;${LUA_CPATH:-;}"
fi
exec lua5.4 "$here/demo.lua" "$WR_DSN"
