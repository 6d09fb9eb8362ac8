#!/usr/bin/env bash
# The test command: installs what is needed, builds walrouter three ways
# (plain with valgrind runs, AddressSanitizer+UBSan, ThreadSanitizer), starts a
# throwaway primary + two replicas and runs every suite against it.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/setup.sh"
"$top/scripts/build.sh" build -DWALROUTER_VALGRIND=ON
"$top/scripts/build.sh" build-asan -DWALROUTER_SANITIZE=address,undefined -DWALROUTER_LUA=OFF -DWALROUTER_PYTHON=OFF
"$top/scripts/build.sh" build-tsan -DWALROUTER_SANITIZE=thread -DWALROUTER_LUA=OFF -DWALROUTER_PYTHON=OFF
# libFuzzer targets (tests/fuzz, a project of their own built with clang),
# each run briefly by ctest there.
CC=clang cmake -S "$top/tests/fuzz" -B "$top/build-fuzz" -DWALROUTER_FUZZ=ON >/dev/null
cmake --build "$top/build-fuzz" -j"$(nproc)" >&2
exec "$top/tests/run.sh" build build-asan build-tsan build-fuzz
