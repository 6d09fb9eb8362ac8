#!/usr/bin/env bash
# ABI check: a shared library exports exactly the functions its public
# headers declare. tests/abi.sh LIB.so HEADER...
set -euo pipefail
lib=$1; shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Declared: every `wr_name(` left after preprocessing the headers, minus
# function-pointer typedefs; the *_sized macros' names are not functions.
for h in "$@"; do
  cc -E -P -I"$(dirname "$h")" "$h"
done | grep -oE '\bwr_[a-z0-9_]+[[:space:]]*\(' | tr -d '( \t' | sort -u > "$tmp/declared"
nm -D --defined-only "$lib" | awk '$2 ~ /^[TtWDdBbRr]$/ {print $3}' | grep -v '^_' | sort -u > "$tmp/exported"
extra=$(comm -13 "$tmp/declared" "$tmp/exported")
missing=$(comm -23 "$tmp/declared" "$tmp/exported")
status=0
if [ -n "$extra" ]; then
  echo "abi: $(basename "$lib") exports symbols no public header declares:" >&2
  echo "$extra" | sed 's/^/  /' >&2
  status=1
fi
if [ -n "$missing" ]; then
  echo "abi: declared in a public header but not exported by $(basename "$lib"):" >&2
  echo "$missing" | sed 's/^/  /' >&2
  status=1
fi
[ $status -eq 0 ] && echo "abi: $(basename "$lib") exports exactly the $(wc -l < "$tmp/declared") declared functions"
exit $status
