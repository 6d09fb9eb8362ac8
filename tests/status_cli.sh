#!/usr/bin/env bash
# walrouter-status against the running test cluster: the table names every
# node (a down one with "-" for what is not known) and shows no per-process
# served counts, --json parses and holds every field, --metrics is valid
# exposition text, bad usage exits 2 naming the bad argument, and no output
# shows the password.
set -euo pipefail
bin=$1
: "${WR_TEST_DSN:?WR_TEST_DSN is not set: run the suite with tests/run.sh}"
py=/usr/bin/python3
fail() { echo "status_cli: $*" >&2; exit 1; }

table=$("$bin" "$WR_TEST_DSN")
grep -q primary <<<"$table" || fail "table has no primary: $table"
[ "$(grep -c replica <<<"$table")" -eq 2 ] || fail "table lacks two replicas: $table"

json=$("$bin" "$WR_TEST_DSN" --json)
$py - <<PYEOF || fail "bad --json output: $json"
import json
nodes = json.loads('''$json''')
assert len(nodes) == 3
for n in nodes:
    for f in ("host", "port", "role", "state", "lag_bytes", "lag_seconds", "replay_lsn",
              "conns_in_use", "conns_idle", "last_error", "served", "errors", "last_check_unix_ms"):
        assert f in n, f
PYEOF

metrics=$("$bin" "$WR_TEST_DSN" --metrics)
grep -q '^# TYPE walrouter_statements_total counter$' <<<"$metrics" || fail "no counter in --metrics"
grep -Eq '^walrouter_node_up\{node="127\.0\.0\.1:[0-9]+",role="primary"\} 1$' <<<"$metrics" || fail "no primary up metric"

# Served counts are per process (always 0 here): the table has none.
grep -q served <<<"$(head -n1 <<<"$table")" && fail "table header shows served counts: $table"

# A node that is down: its role, lag and position are not known, shown "-";
# the exit status says a node is down.
down_dsn=$(sed 's|^\(postgres[a-z]*://[^/]*\)/|\1,127.0.0.1:1/|' <<<"$WR_TEST_DSN")
rc=0; down=$("$bin" "$down_dsn") || rc=$?
[ $rc -eq 1 ] || fail "exit $rc with a node down: $down"
grep -Eq '^3 +127\.0\.0\.1:1 +- +down +- +- +- ' <<<"$down" || fail "down node not shown with '-': $down"
grep -q walrouter-secret <<<"$down" && fail "password shown: $down"

# Bad usage names what was wrong.
rc=0; err=$("$bin" "$WR_TEST_DSN" --jsn 2>&1 >/dev/null) || rc=$?
[ $rc -eq 2 ] || fail "--jsn exit $rc"
grep -q 'unknown option --jsn' <<<"$err" || fail "--jsn not named: $err"
rc=0; err=$("$bin" "$WR_TEST_DSN" --watch soon 2>&1 >/dev/null) || rc=$?
[ $rc -eq 2 ] && grep -q -- '--watch soon' <<<"$err" || fail "bad --watch not named (exit $rc): $err"

for out in "$table" "$json" "$metrics"; do
  grep -q walrouter-secret <<<"$out" && fail "password shown"
done
rc=0; "$bin" >/dev/null 2>&1 || rc=$?; [ $rc -eq 2 ] || fail "usage exit $rc"
rc=0; err=$("$bin" "postgresql://walrouter:walrouter-secret@127.0.0.1:1/x" 2>&1) || rc=$?
[ $rc -eq 2 ] || fail "unreachable exit $rc"
grep -q walrouter-secret <<<"$err" && fail "password in error: $err"
echo "status_cli: ok"
