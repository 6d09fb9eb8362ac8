#!/usr/bin/env bash
# Throwaway local PostgreSQL 15 cluster for walrouter tests and demos: node 0 = the (initial)
# primary, nodes 1 and 2 = streaming replicas, all on 127.0.0.1. Run without arguments for help.
# Progress goes to stderr; `start` prints the multi-host URI as the last line of stdout.
set -euo pipefail

DIR=${WR_CLUSTER_DIR:-/tmp/walrouter-cluster}
[[ $DIR == /* ]] || DIR="$PWD/$DIR"
# Below Linux's ephemeral range (32768-60999), so that no client connection's
# local port can take a node's port while it is stopped.
BASE_PORT=${WR_BASE_PORT:-25432}
SOCK="$DIR/sock"
WR_USER=walrouter WR_PASS=walrouter-secret WR_DB=walrouter
NODES=(0 1 2) PORTS=()
cd /  # binaries run as `postgres` must not start in an unreadable cwd (e.g. /root)

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() {
  cat >&2 <<EOF
usage: $0 COMMAND [ARGS]        (state dir: $DIR)
  start            (re)create and start primary node0 + replicas node1, node2; print URI
  stop             stop every node and remove the state dir
  status           port, running?, in recovery? for each node
  uri | port N     print the multi-host URI | node N's port
  primary          print the number of the current primary node
  psql N [SQL]     psql on node N as superuser (db $WR_DB); interactive without SQL
  pause N | resume N        pause / resume WAL replay on replica N
  delay N MS       set recovery_min_apply_delay on replica N (0 removes it)
  stop-node N | start-node N
  promote N        promote replica N and make the other running replicas follow it
  wait-replay N    wait until node N has replayed the primary's current WAL position
EOF
}

find_bindir() {
  BIN=${WR_PG_BINDIR:-$(pg_config --bindir 2>/dev/null || true)}
  [[ -x $BIN/initdb ]] || BIN=/usr/lib/postgresql/15/bin
  if [[ ! -x $BIN/initdb && $EUID -eq 0 ]]; then
    log "PostgreSQL server binaries missing, installing them with apt-get"
    { apt-get install -y postgresql || { apt-get update && apt-get install -y postgresql; }; } >&2 ||
      die "apt-get install postgresql failed"
  fi
  [[ -x $BIN/initdb ]] || die "PostgreSQL binaries not found (pg_config --bindir, /usr/lib/postgresql/15/bin)"
  [[ $EUID -ne 0 ]] || id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user"
}
# Run a PostgreSQL binary; as root it runs as `postgres` (initdb and postgres refuse root).
pg() {
  local b=$1; shift
  if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$BIN/$b" "$@"; else "$BIN/$b" "$@"; fi
}
check_node() { [[ ${1:-} =~ ^[012]$ ]] || die "bad or missing node number '${1:-}' (expected 0, 1 or 2)"; }
load_ports() {
  [[ -f $DIR/ports ]] || die "no cluster in $DIR (run: $0 start)"
  mapfile -t PORTS <"$DIR/ports"
  [[ ${#PORTS[@]} -eq 3 ]] || die "corrupt $DIR/ports"
}
# A port is taken when something listens on it, or when any socket uses it as
# its local port (a client's ephemeral port would make the server's bind fail).
port_taken() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
  command -v ss >/dev/null 2>&1 && [[ -n $(ss -Htan "sport = :$1" 2>/dev/null) ]]
}

pick_ports() {
  local p=$BASE_PORT try i busy
  for ((try = 0; try < 100; try++, p += 3)); do
    busy=""
    for i in "${NODES[@]}"; do port_taken $((p + i)) && busy=$((p + i)) && break; done
    if [[ -z $busy ]]; then PORTS=("$p" $((p + 1)) $((p + 2))); return; fi
    log "port $busy is taken, trying ports $((p + 3))-$((p + 5))"
  done
  die "no free block of 3 ports found from $BASE_PORT"
}
conninfo() { echo "host=127.0.0.1 port=${PORTS[$1]} user=$WR_USER password=$WR_PASS application_name=$2"; }
uri() { echo "postgresql://$WR_USER:$WR_PASS@127.0.0.1:${PORTS[0]},127.0.0.1:${PORTS[1]},127.0.0.1:${PORTS[2]}/$WR_DB"; }
# q N [psql args]: psql on node N over the unix socket as the bootstrap superuser.
q() { local n=$1; shift; pg psql -X -A -t -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "${PORTS[n]}" -U postgres -d "${QDB:-$WR_DB}" "$@"; }
sql() { q "$1" -c "$2"; }
is_true() { [[ $(sql "$1" "$2" 2>/dev/null) == t ]]; }
running() { [[ -d $DIR/node$1 ]] && pg pg_ctl status -D "$DIR/node$1" >/dev/null 2>&1; }
start_pg() {
  pg pg_ctl start -D "$DIR/node$1" -l "$DIR/logs/node$1.log" -w -t 60 >/dev/null && return 0
  tail -n 20 "$DIR/logs/node$1.log" | sed "s/^/node$1.log: /" >&2 # the log goes with the directory
  die "node$1 failed to start"
}

# wait_for SECONDS WHAT COMMAND...: poll COMMAND every 0.2 s until it succeeds.
wait_for() {
  local timeout=$1 what=$2 deadline=$((SECONDS + $1)); shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what"
    sleep 0.2
  done
}
need_replica() {
  check_node "$1"; load_ports
  running "$1" || die "node$1 is not running"
  is_true "$1" "SELECT pg_is_in_recovery()" || die "node$1 is not a replica (not in recovery)"
}

# Kill a postmaster that still owns node N's pid file (e.g. after an interrupted run).
kill_stale() {
  local f="$DIR/node$1/postmaster.pid" pid
  [[ -f $f ]] || return 0
  pid=$(head -n 1 "$f" 2>/dev/null || true)
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 0
  grep -qa postgres "/proc/$pid/cmdline" 2>/dev/null || return 0
  log "killing stale postmaster $pid of node$1"
  kill -9 "$pid" 2>/dev/null || true
  for _ in {1..50}; do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
}

# stop_servers fast|immediate: stop every node of the cluster in $DIR, replicas first.
stop_servers() {
  local i d
  for i in 2 1 0; do
    d="$DIR/node$i"
    [[ -f $d/postmaster.pid ]] || continue
    if [[ $1 == fast ]] && pg pg_ctl stop -D "$d" -m fast -w -t 30 >/dev/null 2>&1; then continue; fi
    pg pg_ctl stop -D "$d" -m immediate -w -t 30 >/dev/null 2>&1 || true
    kill_stale "$i"
  done
}

remove_dir() {
  [[ -e $DIR ]] || return 0
  [[ -f $DIR/ports || -d $DIR/node0 || -d $SOCK || -z $(ls -A "$DIR") ]] ||
    die "$DIR exists but does not look like a walrouter cluster; refusing to remove it"
  stop_servers "$1"
  rm -rf "$DIR"
}

cmd_start() {
  local t0=$SECONDS i
  [[ ! -e $DIR ]] || log "removing the previous cluster in $DIR"
  remove_dir immediate
  pick_ports
  mkdir -p "$DIR"
  printf '%s\n' "${PORTS[@]}" >"$DIR/ports"
  mkdir -p "$DIR/logs" "$SOCK"
  if [[ $EUID -eq 0 ]]; then
    chown -R postgres:postgres "$DIR"
    runuser -u postgres -- test -w "$DIR" || die "user postgres cannot write to $DIR (choose another WR_CLUSTER_DIR)"
  fi
  log "initdb node0 (ports ${PORTS[*]})"
  pg initdb -D "$DIR/node0" -U postgres -E UTF8 --locale=C --no-sync \
    --auth-local=trust --auth-host=scram-sha-256 >"$DIR/logs/initdb.log" 2>&1 ||
    { cat "$DIR/logs/initdb.log" >&2; die "initdb failed"; }
  local conf=(
    "listen_addresses = '127.0.0.1'" "port = ${PORTS[0]}" "unix_socket_directories = '$SOCK'"
    "wal_level = replica" "max_wal_senders = 10" "max_replication_slots = 10" "wal_keep_size = '256MB'"
    "hot_standby = on" "hot_standby_feedback = on" "wal_receiver_status_interval = 1s"
    "wal_retrieve_retry_interval = 1s" "track_commit_timestamp = on" "synchronous_commit = on"
    "fsync = off" "full_page_writes = off" "shared_buffers = 32MB" "max_connections = 200"
    "log_min_messages = warning")  # the server log is $DIR/logs/nodeN.log (pg_ctl -l)
  printf '%s\n' "" "# ---- walrouter test cluster (tests/cluster.sh) ----" "${conf[@]}" >>"$DIR/node0/postgresql.conf"
  printf '%s\n' "local all all trust" "local replication all trust" \
    "host all all 127.0.0.1/32 scram-sha-256" "host replication all 127.0.0.1/32 scram-sha-256" >"$DIR/node0/pg_hba.conf"
  start_pg 0
  QDB=postgres sql 0 "CREATE ROLE $WR_USER LOGIN SUPERUSER REPLICATION PASSWORD '$WR_PASS'"
  QDB=postgres sql 0 "CREATE DATABASE $WR_DB OWNER $WR_USER"
  for i in 1 2; do
    log "pg_basebackup node$i"
    # -R writes standby.signal and a primary_conninfo that includes the password.
    pg pg_basebackup -d "$(conninfo 0 "node$i")" -D "$DIR/node$i" -R -X stream -C -S "node$i" \
      -c fast --no-sync 2>"$DIR/logs/basebackup$i.log" ||
      { cat "$DIR/logs/basebackup$i.log" >&2; die "pg_basebackup for node$i failed"; }
    printf 'port = %s\n' "${PORTS[i]}" >>"$DIR/node$i/postgresql.conf"
    start_pg "$i"
  done
  wait_for 60 "both replicas to stream from node0" \
    is_true 0 "SELECT count(*) = 2 FROM pg_stat_replication WHERE state = 'streaming'"
  log "cluster up in $((SECONDS - t0))s"
  uri
}

cmd_stop() {
  [[ -e $DIR ]] || { log "no cluster in $DIR"; return 0; }
  find_bindir
  remove_dir fast
  log "stopped, removed $DIR"
}

cmd_status() {
  local i
  load_ports
  for i in "${NODES[@]}"; do
    if running "$i"; then
      echo "node$i port=${PORTS[i]} running $(sql "$i" "SELECT 'in_recovery=' || pg_is_in_recovery()
        || coalesce((SELECT ' receiver=' || status || ' upstream_port=' || sender_port FROM pg_stat_wal_receiver), '')" 2>&1)"
    else
      echo "node$i port=${PORTS[i]} stopped"
    fi
  done
}

# The running node that is not in recovery; if several are (old primary left running
# after a promotion), the one on the highest timeline.
cmd_primary() {
  local i tl best="" best_tl=-1
  load_ports
  for i in "${NODES[@]}"; do
    running "$i" || continue
    tl=$(sql "$i" "SELECT CASE WHEN NOT pg_is_in_recovery() THEN
           ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END" 2>/dev/null) || continue
    if [[ -n $tl ]] && ((tl > best_tl)); then best=$i best_tl=$tl; fi
  done
  [[ -n $best ]] || die "no running primary"
  echo "$best"
}
cmd_psql() {
  check_node "${1:-}"; load_ports
  if [[ $# -ge 2 ]]; then q "$1" -c "$2"; else PSQL_HISTORY=/dev/null q "$1"; fi
}

cmd_pause() {
  need_replica "$1"
  sql "$1" "SELECT pg_wal_replay_pause()" >/dev/null
  wait_for 30 "replay on node$1 to pause" is_true "$1" "SELECT pg_get_wal_replay_pause_state() = 'paused'"
}
cmd_resume() { need_replica "$1"; sql "$1" "SELECT pg_wal_replay_resume()" >/dev/null; }
cmd_delay() {
  need_replica "$1"
  [[ ${2:-} =~ ^[0-9]+$ ]] || die "usage: delay N MILLISECONDS"
  if (($2 == 0)); then sql "$1" "ALTER SYSTEM RESET recovery_min_apply_delay"
  else sql "$1" "ALTER SYSTEM SET recovery_min_apply_delay = '$2ms'"; fi
  sql "$1" "SELECT pg_reload_conf()" >/dev/null
  wait_for 10 "node$1 to reload its configuration" \
    is_true "$1" "SELECT setting::bigint = $2 FROM pg_settings WHERE name = 'recovery_min_apply_delay'"
}

cmd_stop_node() {
  check_node "${1:-}"; load_ports
  running "$1" || { log "node$1 is not running"; return 0; }
  pg pg_ctl stop -D "$DIR/node$1" -m fast -w -t 60 >/dev/null || die "could not stop node$1"
}
cmd_start_node() {
  check_node "${1:-}"; load_ports
  [[ -d $DIR/node$1 ]] || die "node$1 has no data directory in $DIR"
  running "$1" || start_pg "$1"
  wait_for 60 "node$1 to accept connections" sql "$1" "SELECT 1"
}

cmd_promote() {
  local n=$1 j
  need_replica "$n"
  log "promoting node$n"
  pg pg_ctl promote -D "$DIR/node$n" -w -t 60 >/dev/null || die "pg_ctl promote node$n failed"
  wait_for 60 "node$n to leave recovery" is_true "$n" "SELECT NOT pg_is_in_recovery()"
  for j in "${NODES[@]}"; do
    if [[ $j == "$n" ]] || ! running "$j" || ! is_true "$j" "SELECT pg_is_in_recovery()"; then continue; fi
    log "repointing node$j to node$n"
    sql "$n" "SELECT pg_create_physical_replication_slot('node$j', true)
              WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = 'node$j')" >/dev/null
    sql "$j" "ALTER SYSTEM SET primary_conninfo = '$(conninfo "$n" "node$j")'"
    sql "$j" "ALTER SYSTEM SET primary_slot_name = 'node$j'"
    pg pg_ctl restart -D "$DIR/node$j" -m fast -w -t 60 -l "$DIR/logs/node$j.log" >/dev/null ||
      die "could not restart node$j, see $DIR/logs/node$j.log"
    wait_for 60 "node$j to stream from node$n" is_true "$n" \
      "SELECT EXISTS (SELECT FROM pg_stat_replication WHERE application_name = 'node$j' AND state = 'streaming')"
  done
}

cmd_wait_replay() {
  local n=$1 p lsn
  check_node "$n"; load_ports
  p=$(cmd_primary)
  [[ $p != "$n" ]] || return 0
  running "$n" || die "node$n is not running"
  lsn=$(sql "$p" "SELECT pg_current_wal_lsn()")
  wait_for 30 "node$n to replay up to $lsn (primary node$p)" \
    is_true "$n" "SELECT coalesce(pg_last_wal_replay_lsn() >= '$lsn', false)"
}

main() {
  local cmd=${1:-}
  (($#)) && shift
  case $cmd in
    start) find_bindir; cmd_start ;;
    stop) cmd_stop ;;
    uri) load_ports; uri ;;
    port) check_node "${1:-}"; load_ports; echo "${PORTS[$1]}" ;;
    status | primary | psql | pause | resume | delay | stop-node | start-node | promote | wait-replay)
      [[ $cmd == status || $cmd == primary || $# -ge 1 ]] || die "usage: $cmd N"
      [[ $cmd != delay || $# -ge 2 ]] || die "usage: delay N MILLISECONDS"
      find_bindir
      "cmd_${cmd//-/_}" "$@" ;;
    help | -h | --help) usage ;;
    *) usage; [[ -z $cmd ]] || log "error: unknown command '$cmd'"; exit 2 ;;
  esac
}

main "$@"
