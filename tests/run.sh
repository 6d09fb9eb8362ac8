#!/usr/bin/env bash
# Starts a throwaway cluster, runs ctest in each given build directory against
# it, and stops the cluster on every exit path: tests/run.sh build [build-asan ...]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export WR_CLUSTER_DIR=${WR_CLUSTER_DIR:-/tmp/walrouter-test-cluster}
export WR_BASE_PORT=${WR_BASE_PORT:-25450}
export WR_CLUSTER_SH="$top/tests/cluster.sh"
trap '"$WR_CLUSTER_SH" stop >/dev/null 2>&1 || true' EXIT INT TERM
WR_TEST_DSN=$("$WR_CLUSTER_SH" start | tail -n 1)
export WR_TEST_DSN
[ $# -gt 0 ] || set -- build
status=0
for dir in "$@"; do
  echo "== ctest in $dir" >&2
  args=(--output-on-failure --timeout 600)
  # ThreadSanitizer: the unit tests and the threads test (the C API under load).
  case "$dir" in *tsan*) args+=(-R 'c_test_(threads|lsn|decide|token|options|engine|async|conn|refresher)$');; esac
  (cd "$top/$dir" && ctest "${args[@]}") || status=1
done
exit $status
