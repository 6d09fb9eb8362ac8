#!/usr/bin/env bash
# The workload comparison in one command: starts its own cluster (a primary
# and two streaming replicas, tests/cluster.sh) and a Pgpool-II in front of it,
# then runs the same read/write workload under injected replication lag
# through each routing strategy, and writes CSV, JSON, a Markdown table and
# PNG plots under bench/workload/out/ (or --out DIR):
#   bench/workload/run.sh [--smoke] [workload.py options, e.g. --seconds 10 --readers 20]
# --smoke: a short run (well under 30 s) that checks the harness end to end.
# Needs a build with the Python binding (scripts/build.sh build, or
# WR_BUILD_DIR) and the Debian packages pgpool2, python3-psycopg2 and
# python3-matplotlib (scripts/setup.sh installs them). Everything it starts
# listens on 127.0.0.1 only and is stopped on every exit path.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
here="$top/bench/workload"
smoke=0
if [[ ${1:-} == --smoke ]]; then smoke=1; shift; fi
build=${WR_BUILD_DIR:-$top/build}
[[ $build == /* ]] || build="$top/$build"
[[ -d $build/python/walrouter ]] || { echo "run.sh: no Python binding in $build/python (WR_BUILD_DIR)" >&2; exit 1; }
command -v pgpool >/dev/null || { echo "run.sh: pgpool not found (apt-get install pgpool2)" >&2; exit 1; }

# Its own cluster, ports and temporary files, whatever the caller's environment
# says (tests/run.sh exports the shared test cluster's).
if ((smoke)); then
  name=walrouter-bench-workload-smoke base=${WR_WORKLOAD_SMOKE_BASE_PORT:-25614} pool=${WR_WORKLOAD_SMOKE_PGPOOL_PORT:-25622}
  children=${WR_WORKLOAD_PGPOOL_CHILDREN:-16}
else
  name=walrouter-bench-workload base=${WR_WORKLOAD_BASE_PORT:-25610} pool=${WR_WORKLOAD_PGPOOL_PORT:-25620}
  children=${WR_WORKLOAD_PGPOOL_CHILDREN:-64}
fi
export WR_CLUSTER_DIR=/tmp/$name-cluster WR_BASE_PORT=$base
export WR_CLUSTER_SH="$top/tests/cluster.sh"
pooldir=/tmp/$name-pgpool
pool_pid=

stop_pgpool() {
  if [[ -n $pool_pid ]]; then
    kill -INT "$pool_pid" 2>/dev/null || true # fast shutdown (TERM waits for clients)
    wait "$pool_pid" 2>/dev/null || true
    pool_pid=
  elif [[ -f $pooldir/pgpool.pid ]]; then # left by an interrupted run of this script
    local pid
    pid=$(head -n1 "$pooldir/pgpool.pid")
    if [[ $pid =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$pooldir/pgpool.conf"; then
      kill -INT "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  fi
}
cleanup() {
  stop_pgpool
  [[ -z ${started:-} ]] || echo "run.sh: Pgpool-II stopped after ${SECONDS}s" >&2
  "$WR_CLUSTER_SH" stop >/dev/null 2>&1 || true
}
trap 'cleanup; echo "run.sh: stopped everything after ${SECONDS}s" >&2' EXIT
trap 'exit 130' INT TERM
cleanup # leftovers of an interrupted run
rm -rf "$pooldir"
mkdir -p "$pooldir"

started=1
echo "run.sh: starting the cluster in $WR_CLUSTER_DIR" >&2
dsn=$("$WR_CLUSTER_SH" start | tail -n1)
echo "run.sh: cluster up after ${SECONDS}s, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
ports=("$("$WR_CLUSTER_SH" port 0)" "$("$WR_CLUSTER_SH" port 1)" "$("$WR_CLUSTER_SH" port 2)")

# Pgpool-II in streaming-replication mode: load balancing over the replicas
# (primary weight 0, so that, as for the other strategies, reads go to a
# replica unless pgpool's own rules send them to the primary), replicas more
# than delay_threshold bytes behind (checked every sr_check_period seconds)
# skipped, a write in a transaction keeps that transaction's later reads on
# the primary (the default of disable_load_balance_on_write).
umask 077
printf 'walrouter:TEXTwalrouter-secret\n' >"$pooldir/pool_passwd"
printf 'host all all 127.0.0.1/32 scram-sha-256\n' >"$pooldir/pool_hba.conf"
: >"$pooldir/pcp.conf"
cat >"$pooldir/pgpool.conf" <<CONF
backend_clustering_mode = 'streaming_replication'
listen_addresses = '127.0.0.1'
port = $pool
socket_dir = '$pooldir'
pcp_listen_addresses = ''
pcp_port = $((pool + 1))
pcp_socket_dir = '$pooldir'
pid_file_name = '$pooldir/pgpool.pid'
logdir = '$pooldir'
backend_hostname0 = '127.0.0.1'
backend_port0 = ${ports[0]}
backend_weight0 = 0
backend_flag0 = 'DISALLOW_TO_FAILOVER'
backend_hostname1 = '127.0.0.1'
backend_port1 = ${ports[1]}
backend_weight1 = 1
backend_flag1 = 'DISALLOW_TO_FAILOVER'
backend_hostname2 = '127.0.0.1'
backend_port2 = ${ports[2]}
backend_weight2 = 1
backend_flag2 = 'DISALLOW_TO_FAILOVER'
enable_pool_hba = on
pool_passwd = '$pooldir/pool_passwd'
num_init_children = $children
max_pool = 1
load_balance_mode = on
disable_load_balance_on_write = 'transaction'
statement_level_load_balance = off
sr_check_period = 1
sr_check_user = 'walrouter'
sr_check_password = 'walrouter-secret'
sr_check_database = 'walrouter'
delay_threshold = ${WR_WORKLOAD_DELAY_THRESHOLD:-1024}
health_check_period = 0
failover_on_backend_error = off
memory_cache_enabled = off
memqcache_total_size = 1048576
memqcache_max_num_cache = 1000
memqcache_maxcache = 8192
memqcache_cache_block_size = 65536
log_min_messages = warning
CONF
umask 022
echo "run.sh: starting Pgpool-II on 127.0.0.1:$pool" >&2
pgpool -n -D -f "$pooldir/pgpool.conf" -F "$pooldir/pcp.conf" -a "$pooldir/pool_hba.conf" \
  >"$pooldir/pgpool.log" 2>&1 &
pool_pid=$!
pooldsn="postgresql://walrouter:walrouter-secret@127.0.0.1:$pool/walrouter"
for i in $(seq 100); do
  kill -0 "$pool_pid" 2>/dev/null || { cat "$pooldir/pgpool.log" >&2; echo "run.sh: pgpool exited" >&2; exit 1; }
  pg_isready -q -h 127.0.0.1 -p "$pool" -d walrouter && break
  ((i < 100)) || { cat "$pooldir/pgpool.log" >&2; echo "run.sh: pgpool not ready" >&2; exit 1; }
  sleep 0.1
done

echo "run.sh: Pgpool-II up after ${SECONDS}s" >&2
args=(--dsn "$dsn" --pgpool "$pooldsn")
((smoke)) && args+=(--smoke --out "/tmp/$name-out")
status=0
PYTHONPATH="$build/python" PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 "$here/workload.py" "${args[@]}" "$@" || status=$?
echo "run.sh: done after ${SECONDS}s, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exit $status
