#!/usr/bin/env bash
# Configures and builds one build directory: scripts/build.sh DIR [cmake args...]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=$1; shift
cmake -S "$top" -B "$top/$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWALROUTER_WERROR=ON \
  -DWALROUTER_LUA=ON -DWALROUTER_PYTHON=ON -DWALROUTER_VALGRIND=OFF "$@" >/dev/null
cmake --build "$top/$dir" -j"$(nproc)" >&2
