#!/usr/bin/env bash
# Installation: `cmake --install` of a build into a scratch prefix, then a
# separate CMake project finds it with find_package(walrouter) and links
# walrouter::walrouter, walrouter::engine and walrouter::static; pkg-config
# finds it too. tests/install.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d /tmp/walrouter-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log" >&2; exit 1; }
mkdir -p "$tmp/src"
cp "$top/tests/install/consumer.c" "$top/tests/install/engine_consumer.c" "$tmp/src/"
cp "$top/tests/install/CMakeLists.txt.in" "$tmp/src/CMakeLists.txt"
cmake -S "$tmp/src" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >"$tmp/cfg.log" 2>&1 || { cat "$tmp/cfg.log" >&2; exit 1; }
cmake --build "$tmp/build" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; exit 1; }
"$tmp/build/consumer" | grep -q "walrouter .*: 50"
"$tmp/build/engine_consumer" | grep -q "engine: 16/B374D848"
"$tmp/build/static_consumer" | grep -q ": 50"
# The engine-only program does not pull in libpq.
if ldd "$tmp/build/engine_consumer" | grep -q libpq; then
  echo "install: the engine consumer links libpq" >&2; exit 1
fi
# pkg-config, and a plain cc ... -lwalrouter
libdir=$(dirname "$(find "$tmp/prefix" -name 'libwalrouter.so.0' | head -n1)")
export PKG_CONFIG_PATH="$libdir/pkgconfig"
# shellcheck disable=SC2046
cc -o "$tmp/plain" "$tmp/src/consumer.c" $(pkg-config --cflags --libs walrouter)
LD_LIBRARY_PATH="$libdir" "$tmp/plain" | grep -q ": 50"
echo "install: find_package(walrouter) and pkg-config consumers build and run"
