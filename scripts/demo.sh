#!/usr/bin/env bash
# The demo command: installs what is needed, builds, starts a local primary and
# two replicas, and runs the demos against them (the cluster is stopped after).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/setup.sh"
"$top/scripts/build.sh" build
# Install (library, header, walrouter-status, Lua module, Python package) so
# `lua5.4` and `/usr/bin/python3` find walrouter from any shell.
if [ "$(id -u)" -eq 0 ]; then cmake --install "$top/build" >/dev/null; fi
export WR_CLUSTER_DIR=${WR_CLUSTER_DIR:-/tmp/walrouter-demo-cluster}
export WR_BASE_PORT=${WR_BASE_PORT:-25432}
export WR_CLUSTER_SH="$top/tests/cluster.sh"
trap '"$WR_CLUSTER_SH" stop >/dev/null 2>&1 || true' EXIT INT TERM
WR_DSN=$("$WR_CLUSTER_SH" start | tail -n 1)
export WR_DSN
echo "== C demo ($top/examples/c/demo.c)"
"$top/build/examples/c/walrouter_demo" "$WR_DSN"
for extra in "$top"/examples/*/demo.sh; do
  [ -x "$extra" ] && { echo; echo "== $(basename "$(dirname "$extra")") demo"; "$extra"; }
done
echo; echo "== walrouter-status"
"$top/build/tools/walrouter-status" "$WR_DSN" || true
