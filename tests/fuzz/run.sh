#!/usr/bin/env bash
# Runs one libFuzzer target for SECONDS on a scratch copy of its seed corpus
# (new inputs it finds stay out of the repository), failing on any crash,
# leak, sanitizer report or timeout:  run.sh TARGET SEED_DIR [SECONDS]
set -euo pipefail
bin=$1 seeds=$2 secs=${3:-10}
work=$(mktemp -d "${TMPDIR:-/tmp}/wr-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts"
cp -r "$seeds"/. "$work/corpus/" 2>/dev/null || true
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$work/corpus" 2>"$work/log" || {
  tail -n 60 "$work/log" >&2
  for a in "$work"/artifacts/*; do
    [ -e "$a" ] && { echo "crashing input ($(basename "$a")):" >&2; od -An -c "$a" | head -n 20 >&2; }
  done
  exit 1
}
grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$work/log" | sed "s|^|$(basename "$bin"): |"
