#!/usr/bin/env bash
# The workload comparison in one command: starts its own cluster (a primary
# and two streaming replicas, tests/cluster.sh), a Pgpool-II in front of it and
# a PgBouncer in front of each node, then runs the same read/write workload under injected replication lag
# through each routing strategy, and writes CSV, JSON, a Markdown table and
# PNG plots under bench/workload/out/ (or --out DIR); without --out, the table
# also goes to bench/workload/RESULTS.md and the plots next to it:
#   bench/workload/run.sh [--smoke] [workload.py options, e.g. --seconds 10 --readers 20]
# --smoke: a short run that checks the harness end to end (ctest bench_workload_smoke).
# Needs a build with the Python binding (scripts/build.sh build, or
# WR_BUILD_DIR) and the Debian packages pgpool2, pgbouncer, python3-psycopg2
# and python3-matplotlib (scripts/setup.sh installs them). Everything it starts
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
pgbouncer_bin=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
[[ -x $pgbouncer_bin ]] || { echo "run.sh: pgbouncer not found (apt-get install pgbouncer)" >&2; exit 1; }
command=("bench/workload/run.sh" "$@")
((smoke)) && command=("bench/workload/run.sh" --smoke "$@")
[[ -z ${WR_BUILD_DIR:-} ]] || command=("WR_BUILD_DIR=$WR_BUILD_DIR" "${command[@]}")

# The users (readers + writers) of the run, from the arguments (workload.py's
# defaults otherwise): Pgpool-II gets a child per user and the cluster
# max_connections for them.
readers=100 writers=2 has_out=0
((smoke)) && readers=4
a=("$@")
for ((i = 0; i < ${#a[@]}; i++)); do
  case ${a[i]} in
    --readers) readers=${a[i + 1]:-} ;; --readers=*) readers=${a[i]#*=} ;;
    --writers) writers=${a[i + 1]:-} ;; --writers=*) writers=${a[i]#*=} ;;
    --out | --out=*) has_out=1 ;;
  esac
done
[[ $readers =~ ^[0-9]+$ && $writers =~ ^[0-9]+$ ]] || { echo "run.sh: bad --readers or --writers" >&2; exit 2; }
((smoke && readers > 4)) && readers=4
users=$((readers + writers))
# Its own cluster, ports and temporary files, whatever the caller's environment
# says (tests/run.sh exports the shared test cluster's).
if ((smoke)); then
  name=walrouter-bench-workload-smoke base=${WR_WORKLOAD_SMOKE_BASE_PORT:-25614} pool=${WR_WORKLOAD_SMOKE_PGPOOL_PORT:-25622}
  bouncer=${WR_WORKLOAD_SMOKE_PGBOUNCER_PORT:-25624}
else
  name=walrouter-bench-workload base=${WR_WORKLOAD_BASE_PORT:-25610} pool=${WR_WORKLOAD_PGPOOL_PORT:-25620}
  bouncer=${WR_WORKLOAD_PGBOUNCER_PORT:-25621}
fi
# A Pgpool-II child per user (each client holds one for its whole session),
# and a few spare.
children=${WR_WORKLOAD_PGPOOL_CHILDREN:-$((users + 8 > 16 ? users + 8 : 16))}
# PgBouncer: pool_mode and server connections per node (PgBouncer's default
# pool size, 20; in session mode every client needs its own).
bouncer_mode=${WR_WORKLOAD_PGBOUNCER_MODE:-transaction}
[[ $bouncer_mode == transaction || $bouncer_mode == session ]] ||
  { echo "run.sh: WR_WORKLOAD_PGBOUNCER_MODE must be transaction or session" >&2; exit 2; }
if [[ $bouncer_mode == session ]]; then bouncer_pool=${WR_WORKLOAD_PGBOUNCER_POOL:-$((users + 8))}
else bouncer_pool=${WR_WORKLOAD_PGBOUNCER_POOL:-20}; fi
# Connections per node at most: the running strategy's (one per user; in
# Pgpool-II's window one per child, closed with its client: connection_cache
# off), PgBouncer's pool, lag injection and spare for the previous window's
# closing ones.
need=$((children + bouncer_pool + 32))
export WR_CLUSTER_DIR=/tmp/$name-cluster WR_BASE_PORT=$base
export WR_CLUSTER_SH="$top/tests/cluster.sh"
pooldir=/tmp/$name-pgpool
bouncedir=/tmp/$name-pgbouncer
pool_pid=
bouncer_pids=()

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
# PgBouncer refuses to run as root: as root it runs as postgres (as the cluster).
as_pg() { if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
stop_pgbouncers() {
  local pid f
  # Each by its pid file (under runuser, the started pid is runuser's), also
  # those left by an interrupted run of this script; SIGINT: immediate shutdown.
  for f in "$bouncedir"/pgbouncer*.pid; do
    [[ -f $f ]] || continue
    pid=$(head -n1 "$f")
    if [[ $pid =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$bouncedir/"; then
      kill -INT "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  done
  for pid in "${bouncer_pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  bouncer_pids=()
}
cleanup() {
  stop_pgbouncers
  stop_pgpool
  [[ -z ${started:-} ]] || echo "run.sh: Pgpool-II stopped after ${SECONDS}s" >&2
  "$WR_CLUSTER_SH" stop >/dev/null 2>&1 || true
}
trap 'cleanup; echo "run.sh: stopped everything after ${SECONDS}s" >&2' EXIT
trap 'exit 130' INT TERM
cleanup # leftovers of an interrupted run
rm -rf "$pooldir" "$bouncedir"
mkdir -p "$pooldir" "$bouncedir"

started=1
echo "run.sh: starting the cluster in $WR_CLUSTER_DIR" >&2
dsn=$("$WR_CLUSTER_SH" start | tail -n1)
echo "run.sh: cluster up after ${SECONDS}s, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
ports=("$("$WR_CLUSTER_SH" port 0)" "$("$WR_CLUSTER_SH" port 1)" "$("$WR_CLUSTER_SH" port 2)")

# tests/cluster.sh sets max_connections = 200; more users need more. Replicas
# first: a hot standby needs at least its primary's max_connections.
maxconn=${WR_WORKLOAD_MAX_CONNECTIONS:-$need}
if ((maxconn > 200)); then
  echo "run.sh: max_connections = $maxconn on every node (restarting them)" >&2
  for n in 1 2 0; do
    "$WR_CLUSTER_SH" psql "$n" "ALTER SYSTEM SET max_connections = $maxconn" >/dev/null
    "$WR_CLUSTER_SH" stop-node "$n"
    "$WR_CLUSTER_SH" start-node "$n"
  done
  for n in 1 2; do
    for i in $(seq 300); do
      [[ $("$WR_CLUSTER_SH" psql 0 "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'node$n' AND state = 'streaming'") == 1 ]] && break
      ((i < 300)) || { echo "run.sh: node$n does not stream after the restart" >&2; exit 1; }
      sleep 0.2
    done
  done
  echo "run.sh: cluster restarted after ${SECONDS}s" >&2
fi

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
connection_cache = off
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

# One PgBouncer per node on loopback (ports $bouncer, +1, +2 for nodes 0-2),
# SCRAM from the client and to the server (the password in its auth file).
umask 077
printf '"walrouter" "walrouter-secret"\n' >"$bouncedir/userlist.txt"
bouncer_hosts=()
for n in 0 1 2; do
  bp=$((bouncer + n))
  cat >"$bouncedir/pgbouncer$n.ini" <<CONF
[databases]
walrouter = host=127.0.0.1 port=${ports[n]} dbname=walrouter
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bp
unix_socket_dir =
pidfile = $bouncedir/pgbouncer$n.pid
logfile = $bouncedir/pgbouncer$n.log
auth_type = scram-sha-256
auth_file = $bouncedir/userlist.txt
pool_mode = $bouncer_mode
max_client_conn = $((users * 2 + 64))
default_pool_size = $bouncer_pool
max_db_connections = $bouncer_pool
server_idle_timeout = 30
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
CONF
  bouncer_hosts+=("127.0.0.1:$bp")
done
umask 022
[[ $EUID -ne 0 ]] || chown -R postgres:postgres "$bouncedir"
echo "run.sh: starting PgBouncer ($bouncer_mode pooling, $bouncer_pool server connections per node) on 127.0.0.1:$bouncer-$((bouncer + 2))" >&2
for n in 0 1 2; do
  as_pg "$pgbouncer_bin" "$bouncedir/pgbouncer$n.ini" >>"$bouncedir/pgbouncer$n.out" 2>&1 &
  bouncer_pids+=($!)
done
for n in 0 1 2; do
  for i in $(seq 100); do
    kill -0 "${bouncer_pids[n]}" 2>/dev/null ||
      { cat "$bouncedir/pgbouncer$n.out" "$bouncedir/pgbouncer$n.log" >&2 2>/dev/null; echo "run.sh: pgbouncer $n exited" >&2; exit 1; }
    pg_isready -q -h 127.0.0.1 -p $((bouncer + n)) -d walrouter && break
    ((i < 100)) || { cat "$bouncedir/pgbouncer$n.log" >&2; echo "run.sh: pgbouncer $n not ready" >&2; exit 1; }
    sleep 0.1
  done
done
bouncerdsn="postgresql://walrouter:walrouter-secret@$(IFS=,; echo "${bouncer_hosts[*]}")/walrouter"
echo "run.sh: PgBouncer up after ${SECONDS}s" >&2

args=(--dsn "$dsn" --pgpool "$pooldsn" --pgbouncer "$bouncerdsn" --pgbouncer-mode "$bouncer_mode"
  --command "${command[*]}")
((smoke)) && args+=(--smoke --out "/tmp/$name-out")
((smoke || has_out)) || args+=(--results "$here/RESULTS.md")
status=0
PYTHONPATH="$build/python" PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 "$here/workload.py" "${args[@]}" "$@" || status=$?
echo "run.sh: done after ${SECONDS}s, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exit $status
