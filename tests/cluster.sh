#!/usr/bin/env bash
# Throwaway local PostgreSQL 15 cluster for walrouter tests and demos: node 0 = the (initial)
# primary, nodes 1 and 2 = streaming replicas, all on 127.0.0.1; `cascade` adds node 3, a
# replica streaming from node 1. Fault injection for tests: freeze/thaw a node's processes,
# a synchronous standby, a stopped WAL receiver, a TCP listener that never answers.
# Run without arguments for help.
# Progress goes to stderr; `start` prints the multi-host URI as the last line of stdout.
set -euo pipefail

DIR=${WR_CLUSTER_DIR:-/tmp/walrouter-cluster}
[[ $DIR == /* ]] || DIR="$PWD/$DIR"
# Below Linux's ephemeral range (32768-60999), so that no client connection's
# local port can take a node's port while it is stopped.
BASE_PORT=${WR_BASE_PORT:-25432}
SOCK="$DIR/sock"
WR_USER=walrouter WR_PASS=walrouter-secret WR_DB=walrouter
NODES=(0 1 2) PORTS=()  # NODES gets 3 once node3 exists (load_ports)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lib/proc.sh
source "$HERE/lib/proc.sh"
cd /  # binaries run as `postgres` must not start in an unreadable cwd (e.g. /root)

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() {
  cat >&2 <<EOF
usage: $0 COMMAND [ARGS]        (state dir: $DIR)
  start            (re)create and start primary node0 + replicas node1, node2; print URI
  stop             stop every node (thawing frozen ones) and the silent listener,
                   remove the state dir
  status           port, running / frozen / stopped, in recovery? for each node
  uri | uri4 | port N       print the URI of nodes 0-2 | of nodes 0-3 | node N's port
  primary          print the number of the current primary node (frozen nodes are skipped)
  psql N [SQL]     psql on node N as superuser (db $WR_DB); interactive without SQL
  pause N | resume N        pause / resume WAL replay on replica N
  delay N MS       set recovery_min_apply_delay on replica N (0 removes it)
  stop-node N | start-node N
  promote N        promote replica N and make the other running replicas follow it
                   (frozen ones are skipped; node3 keeps streaming from node1 while
                   node1 is a replica)
  wait-replay N    wait until node N has replayed the primary's current WAL position
fault injection:
  cascade          (re)create node3, a replica streaming from replica node1 (slot node3
                   on node1); print the 4-host URI (as uri4)
  freeze N | thaw N         SIGSTOP / SIGCONT node N's postmaster and all its children
                   (commands that would query a frozen node skip it or fail, never hang)
  pids N           print the pids of node N's postmaster and of its children
  sync N | async   make replica N the synchronous standby of the primary, with
                   synchronous_commit = remote_apply | replicate asynchronously again
  stop-receiver N | start-receiver N   stop / restart replica N's WAL receiver
                   (the server keeps running)
  silent-start [PORT] | silent-stop    start (print its port) / stop a listener on
                   127.0.0.1:PORT that accepts connections and never answers
                   (tests/silent_listener.py; no PORT or 0: a free port from 26000 up)
N is 0, 1, 2, or 3 once node3 exists.
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
check_node() {
  [[ ${1:-} =~ ^[0-3]$ && (${1:-} != 3 || -d $DIR/node3) ]] ||
    die "bad or missing node number '${1:-}' (expected 0, 1, 2, or 3 once node3 exists)"
}
load_ports() {
  [[ -f $DIR/ports ]] || die "no cluster in $DIR (run: $0 start)"
  mapfile -t PORTS <"$DIR/ports"
  # 3 lines: a cluster started by an older version of this script (blocks of 3 ports).
  [[ ${#PORTS[@]} -eq 3 || ${#PORTS[@]} -eq 4 ]] || die "corrupt $DIR/ports"
  [[ ${#PORTS[@]} -eq 4 ]] || PORTS+=($((PORTS[2] + 1)))
  NODES=(0 1 2)
  [[ ! -d $DIR/node3 ]] || NODES+=(3)
}
# A port is taken when something listens on it, or when any socket uses it as
# its local port (a client's ephemeral port would make the server's bind fail).
port_taken() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
  # TIME-WAIT leftovers of a previous cluster do not stop the server's bind
  # (SO_REUSEADDR), so they do not count: clusters keep their ports.
  command -v ss >/dev/null 2>&1 && [[ -n $(ss -Htan exclude time-wait "sport = :$1" 2>/dev/null) ]]
}

# A block of 4 ports: nodes 0-2 and node3 (cascade).
pick_ports() {
  local p=$BASE_PORT try i busy
  for ((try = 0; try < 100; try++, p += 4)); do
    busy=""
    for i in 0 1 2 3; do port_taken $((p + i)) && busy=$((p + i)) && break; done
    if [[ -z $busy ]]; then PORTS=("$p" $((p + 1)) $((p + 2)) $((p + 3))); return; fi
    log "port $busy is taken, trying ports $((p + 4))-$((p + 7))"
  done
  die "no free block of 4 ports found from $BASE_PORT"
}
conninfo() { echo "host=127.0.0.1 port=${PORTS[$1]} user=$WR_USER password=$WR_PASS application_name=$2"; }
uri() { echo "postgresql://$WR_USER:$WR_PASS@127.0.0.1:${PORTS[0]},127.0.0.1:${PORTS[1]},127.0.0.1:${PORTS[2]}/$WR_DB"; }
uri4() {
  echo "postgresql://$WR_USER:$WR_PASS@127.0.0.1:${PORTS[0]},127.0.0.1:${PORTS[1]},127.0.0.1:${PORTS[2]},127.0.0.1:${PORTS[3]}/$WR_DB"
}
# q N [psql args]: psql on node N over the unix socket as the bootstrap superuser. Fails at
# once on a frozen node (a connection to it would wait forever); the connect timeout is a
# safety net for one frozen behind our back.
q() {
  local n=$1; shift
  [[ ! -f $DIR/frozen$n ]] || { log "node$n is frozen (run: $0 thaw $n)"; return 1; }
  PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-30} pg psql -X -A -t -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "${PORTS[n]}" \
    -U postgres -d "${QDB:-$WR_DB}" "$@"
}
sql() { q "$1" -c "$2"; }
is_true() { [[ $(sql "$1" "$2" 2>/dev/null) == t ]]; }
running() { [[ -d $DIR/node$1 ]] && pg pg_ctl status -D "$DIR/node$1" >/dev/null 2>&1; }
frozen() { [[ -f $DIR/frozen$1 ]]; }
live() { running "$1" && ! frozen "$1"; }  # running and answering
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
  ! frozen "$1" || die "node$1 is frozen (run: $0 thaw $1)"
  is_true "$1" "SELECT pg_is_in_recovery()" || die "node$1 is not a replica (not in recovery)"
}

# ---- processes (/proc) ----
node_pids() {  # node N's postmaster pid, then its descendants
  local pm
  pm=$(postmaster_pid "$1") || return 1
  echo "$pm"
  descendants "$pm"
}
# thaw_node N: SIGCONT the pids recorded by `freeze N` and node N's current postmaster and
# children (also covers an interrupted freeze).
thaw_node() { thaw_recorded "$DIR/frozen$1" "$1"; }

# Kill a postmaster that still owns node N's pid file (e.g. after an interrupted run), and its
# children (which may be stopped: SIGKILL ends stopped processes too).
kill_stale() {
  local -a pids=()
  mapfile -t pids < <(node_pids "$1" || true)
  ((${#pids[@]})) || return 0
  log "killing stale postmaster ${pids[0]} of node$1 and its $((${#pids[@]} - 1)) children"
  kill -9 "${pids[@]}" 2>/dev/null || true
  wait_gone 5 "${pids[@]}" || true
}

# stop_servers fast|immediate: stop every node of the cluster in $DIR, replicas first,
# after thawing frozen ones.
stop_servers() {
  local i d
  for i in 3 2 1 0; do [[ ! -d $DIR/node$i ]] || thaw_node "$i"; done
  for i in 3 2 1 0; do
    d="$DIR/node$i"
    [[ -f $d/postmaster.pid ]] || continue
    if [[ $1 == fast ]] && pg pg_ctl stop -D "$d" -m fast -w -t 30 >/dev/null 2>&1; then continue; fi
    pg pg_ctl stop -D "$d" -m immediate -w -t 30 >/dev/null 2>&1 || true
    kill_stale "$i"
  done
}

remove_dir() {
  [[ -e $DIR ]] || return 0
  [[ -f $DIR/ports || -d $DIR/node0 || -d $SOCK || -f $DIR/silent.pid || -z $(ls -A "$DIR") ]] ||
    die "$DIR exists but does not look like a walrouter cluster; refusing to remove it"
  silent_stop
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
    if frozen "$i"; then
      echo "node$i port=${PORTS[i]} frozen"
    elif running "$i"; then
      echo "node$i port=${PORTS[i]} running $(sql "$i" "SELECT 'in_recovery=' || pg_is_in_recovery()
        || coalesce((SELECT ' receiver=' || status || ' upstream_port=' || sender_port FROM pg_stat_wal_receiver), '')" 2>&1)"
    else
      echo "node$i port=${PORTS[i]} stopped"
    fi
  done
}

# The running node that is not in recovery; if several are (old primary left running
# after a promotion), the one on the highest timeline. Frozen nodes are skipped.
cmd_primary() {
  local i tl best="" best_tl=-1
  load_ports
  for i in "${NODES[@]}"; do
    live "$i" || continue
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
  thaw_node "$1"
  running "$1" || { log "node$1 is not running"; return 0; }
  pg pg_ctl stop -D "$DIR/node$1" -m fast -w -t 60 >/dev/null || die "could not stop node$1"
}
cmd_start_node() {
  check_node "${1:-}"; load_ports
  [[ -d $DIR/node$1 ]] || die "node$1 has no data directory in $DIR"
  ! frozen "$1" || die "node$1 is frozen (run: $0 thaw $1)"
  running "$1" || start_pg "$1"
  wait_for 60 "node$1 to accept connections" sql "$1" "SELECT 1"
}

# upstream_of N: the node that replica N streams from (or would, with its WAL receiver stopped),
# from the port in its primary_conninfo; empty if none.
upstream_of() {
  local ci port i
  if [[ -f $DIR/conninfo$1 ]]; then ci=$(<"$DIR/conninfo$1")
  else ci=$(sql "$1" "SELECT setting FROM pg_settings WHERE name = 'primary_conninfo'"); fi
  [[ $ci =~ port=\'?([0-9]+) ]] || return 0
  port=${BASH_REMATCH[1]}
  for i in "${!PORTS[@]}"; do [[ ${PORTS[i]} != "$port" ]] || echo "$i"; done
}
streams_to() {  # streams_to UPSTREAM N: is node N streaming from node UPSTREAM?
  is_true "$1" "SELECT EXISTS (SELECT FROM pg_stat_replication WHERE application_name = 'node$2' AND state = 'streaming')"
}

# fork_lsn N: where the timeline of primary N forked off its parent (its history file's last line).
fork_lsn() {
  sql "$1" "WITH h AS (SELECT regexp_split_to_array(rtrim(pg_read_file('pg_wal/' ||
              substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) || '.history'), E'\\n'), E'\\n') AS l)
            SELECT split_part(l[array_length(l, 1)], E'\\t', 2)::pg_lsn FROM h"
}

# replica_conf DIR UP J: make the base backup in DIR replica J of node UP, on J's port. The
# copy's postgresql.auto.conf may hold its source's replication settings: replace them.
replica_conf() {
  local d=$1 auto
  auto=$(grep -Ev '^[[:space:]]*(primary_conninfo|primary_slot_name|synchronous_standby_names|synchronous_commit|recovery_min_apply_delay)[[:space:]]*=' \
    "$d/postgresql.auto.conf" || true)
  printf '%s\n' "$auto" "primary_conninfo = '$(conninfo "$2" "node$3")'" "primary_slot_name = 'node$3'" \
    >"$d/postgresql.auto.conf"
  printf 'port = %s\n' "${PORTS[$3]}" >>"$d/postgresql.conf"
  : >"$d/standby.signal"
  [[ $EUID -ne 0 ]] || chown postgres:postgres "$d/postgresql.auto.conf" "$d/standby.signal"
}

# rebuild_from N J: replace replica J by a new base backup of primary N that streams from it.
rebuild_from() {
  local n=$1 j=$2 d="$DIR/node$2"
  log "node$j has WAL past node$n's fork: rebuilding it from node$n"
  pg pg_ctl stop -D "$d" -m immediate -w -t 30 >/dev/null 2>&1 || kill_stale "$j"
  rm -rf "$d"
  pg pg_basebackup -d "$(conninfo "$n" "node$j")" -D "$d" -X stream -S "node$j" \
    -c fast --no-sync 2>"$DIR/logs/basebackup$j.log" ||
    { cat "$DIR/logs/basebackup$j.log" >&2; die "pg_basebackup for node$j failed"; }
  replica_conf "$d" "$n" "$j"
  start_pg "$j"
  wait_for 60 "node$j to stream from node$n" streams_to "$n" "$j"
}

cmd_promote() {
  local n=$1 j up fork
  local -a follow=()
  need_replica "$n"
  log "promoting node$n"
  pg pg_ctl promote -D "$DIR/node$n" -w -t 60 >/dev/null || die "pg_ctl promote node$n failed"
  wait_for 60 "node$n to leave recovery" is_true "$n" "SELECT NOT pg_is_in_recovery()"
  fork=$(fork_lsn "$n") || die "cannot read node$n's timeline history"
  for j in "${NODES[@]}"; do
    if [[ $j == "$n" ]] || ! running "$j"; then continue; fi
    if frozen "$j"; then log "node$j is frozen, not repointing it"; continue; fi
    is_true "$j" "SELECT pg_is_in_recovery()" || continue
    up=$(upstream_of "$j")
    if [[ $up == "$n" ]]; then
      log "node$j already follows node$n"; follow+=("$j"); continue
    elif [[ -n $up && $up != "$j" ]] && live "$up" && is_true "$up" "SELECT pg_is_in_recovery()"; then
      log "node$j keeps streaming from replica node$up"; follow+=("$j"); continue
    fi
    log "repointing node$j to node$n"
    sql "$n" "SELECT pg_create_physical_replication_slot('node$j', true)
              WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = 'node$j')" >/dev/null
    sql "$j" "ALTER SYSTEM SET primary_slot_name = 'node$j'"
    if [[ -f $DIR/conninfo$j ]]; then  # its WAL receiver was stopped: keep it so
      conninfo "$n" "node$j" >"$DIR/conninfo$j"
      sql "$j" "SELECT pg_reload_conf()" >/dev/null
      log "node$j's WAL receiver stays stopped; start-receiver $j connects it to node$n"
      continue
    fi
    if is_true "$j" "SELECT coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) > '$fork'"; then
      # It has WAL of the old timeline past the fork (the old primary had sent it more than
      # node$n): it cannot follow the new timeline. full_page_writes is off, so no pg_rewind;
      # a new base backup, as an HA manager would do.
      rebuild_from "$n" "$j"
      continue
    fi
    sql "$j" "ALTER SYSTEM SET primary_conninfo = '$(conninfo "$n" "node$j")'"
    pg pg_ctl restart -D "$DIR/node$j" -m fast -w -t 60 -l "$DIR/logs/node$j.log" >/dev/null ||
      die "could not restart node$j, see $DIR/logs/node$j.log"
    wait_for 60 "node$j to stream from node$n" streams_to "$n" "$j"
  done
  for j in "${follow[@]}"; do  # they follow the new timeline by themselves
    [[ ! -f $DIR/conninfo$j ]] || continue
    up=$(upstream_of "$j")
    wait_for 60 "node$j to stream from node$up" streams_to "$up" "$j"
  done
}

cmd_wait_replay() {
  local n=$1 p lsn
  check_node "$n"; load_ports
  ! frozen "$n" || die "node$n is frozen (run: $0 thaw $n)"
  p=$(cmd_primary)
  [[ $p != "$n" ]] || return 0
  running "$n" || die "node$n is not running"
  lsn=$(sql "$p" "SELECT pg_current_wal_lsn()")
  wait_for 30 "node$n to replay up to $lsn (primary node$p)" \
    is_true "$n" "SELECT coalesce(pg_last_wal_replay_lsn() >= '$lsn', false)"
}

# ---- fault injection ----

# cascade: (re)create node3 as a replica of node1 (a replica itself, unless promoted). The base
# backup comes from the primary: a backup taken from a standby needs full_page_writes on the
# primary, which this cluster turns off.
cmd_cascade() {
  local p d="$DIR/node3" auto
  load_ports
  live 1 || die "node1 must be running (and not frozen)"
  if [[ -d $d ]]; then
    log "removing the previous node3"
    thaw_node 3
    if [[ -f $d/postmaster.pid ]]; then
      pg pg_ctl stop -D "$d" -m immediate -w -t 30 >/dev/null 2>&1 || kill_stale 3
    fi
    rm -rf "$d" "$DIR/conninfo3"
    NODES=(0 1 2)
  fi
  ! port_taken "${PORTS[3]}" || die "port ${PORTS[3]} (node3) is taken"
  p=$(cmd_primary)
  # Created before the backup, so node1 keeps the WAL that node3 will ask for.
  sql 1 "SELECT pg_create_physical_replication_slot('node3', true)
         WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = 'node3')" >/dev/null
  log "pg_basebackup node3 from node$p"
  pg pg_basebackup -d "$(conninfo "$p" node3)" -D "$d" -X stream -c fast --no-sync 2>"$DIR/logs/basebackup3.log" ||
    { cat "$DIR/logs/basebackup3.log" >&2; die "pg_basebackup for node3 failed"; }
  replica_conf "$d" 1 3
  cmd_wait_replay 1  # node1 must have the WAL up to the end of the backup
  start_pg 3
  NODES=(0 1 2 3)
  wait_for 60 "node3 to stream from node1" streams_to 1 3
  log "node3 streams from node1"
  uri4
}

# freeze N: SIGSTOP node N's postmaster (so that it forks no more), then all its descendants;
# their pids and start times go to $DIR/frozenN for thaw.
cmd_freeze() {
  local n=$1 pm p st more=1 deadline
  local -A stopped=()
  local -a kids
  check_node "$n"; load_ports
  pm=$(postmaster_pid "$n") || die "node$n is not running"
  kill -STOP "$pm" || die "could not SIGSTOP the postmaster ($pm) of node$n"
  stopped[$pm]=1
  while ((more)); do  # again until no new child (one forked just before the SIGSTOP)
    more=0
    mapfile -t kids < <(descendants "$pm")
    for p in "${kids[@]}"; do
      [[ -z ${stopped[$p]:-} ]] || continue
      if kill -STOP "$p" 2>/dev/null; then stopped[$p]=1 more=1; fi
    done
  done
  {
    [[ ! -f $DIR/frozen$n ]] || cat "$DIR/frozen$n"
    for p in "${!stopped[@]}"; do
      if st=$(proc_field "$p" 22); then echo "$p $st"; fi
    done
  } | sort -u >"$DIR/frozen$n.tmp"
  mv -f "$DIR/frozen$n.tmp" "$DIR/frozen$n"
  deadline=$((SECONDS + 5))
  for p in "${!stopped[@]}"; do
    while st=$(proc_field "$p" 3) && [[ $st != [TtZX] ]]; do
      ((SECONDS < deadline)) || die "process $p of node$n does not stop (state $st)"
      sleep 0.02
    done
  done
  log "node$n frozen (${#stopped[@]} processes)"
}
cmd_thaw() {
  check_node "$1"; load_ports
  if frozen "$1"; then thaw_node "$1"; log "node$1 thawed"; else thaw_node "$1"; log "node$1 was not frozen"; fi
}
cmd_pids() {
  check_node "$1"; load_ports
  node_pids "$1" || die "node$1 is not running"
}

# sync N: replica N (streaming from the primary) becomes its synchronous standby, and commits
# wait until N has applied them.
cmd_sync() {
  local n=$1 p
  need_replica "$n"
  p=$(cmd_primary)
  is_true "$p" "SELECT EXISTS (SELECT FROM pg_stat_replication WHERE application_name = 'node$n')" ||
    die "node$n does not stream from the primary node$p"
  log "node$n becomes the synchronous standby of node$p (synchronous_commit = remote_apply)"
  sql "$p" "ALTER SYSTEM SET synchronous_standby_names = '\"node$n\"'"
  sql "$p" "ALTER SYSTEM SET synchronous_commit = remote_apply"
  sql "$p" "SELECT pg_reload_conf()" >/dev/null
  wait_for 30 "node$n to be the synchronous standby of node$p" is_true "$p" \
    "SELECT current_setting('synchronous_commit') = 'remote_apply' AND EXISTS
       (SELECT FROM pg_stat_replication WHERE application_name = 'node$n' AND sync_state = 'sync')"
}
# async: reset both settings on the primary and on any other (unfrozen) node that has them.
cmd_async() {
  local p i
  load_ports
  p=$(cmd_primary 2>/dev/null) || p=""
  for i in "${NODES[@]}"; do
    live "$i" || continue
    [[ $i == "$p" ]] || is_true "$i" "SELECT current_setting('synchronous_standby_names') <> ''
      OR current_setting('synchronous_commit') <> 'on'" || continue
    sql "$i" "ALTER SYSTEM RESET synchronous_standby_names"
    sql "$i" "ALTER SYSTEM RESET synchronous_commit"
    sql "$i" "SELECT pg_reload_conf()" >/dev/null
  done
  [[ -n $p ]] || { log "no running primary: not waiting for it"; return 0; }
  wait_for 30 "node$p to replicate asynchronously" is_true "$p" \
    "SELECT current_setting('synchronous_standby_names') = '' AND current_setting('synchronous_commit') = 'on'
       AND NOT EXISTS (SELECT FROM pg_stat_replication WHERE sync_state <> 'async')"
}

# stop-receiver N: primary_conninfo = '' (saved to $DIR/conninfoN first) stops the WAL
# receiver of replica N; start-receiver N sets the saved value again.
cmd_stop_receiver() {
  local n=$1 ci
  need_replica "$n"
  if [[ ! -f $DIR/conninfo$n ]]; then
    ci=$(sql "$n" "SELECT setting FROM pg_settings WHERE name = 'primary_conninfo'")
    [[ -n $ci ]] || die "node$n has no primary_conninfo"
    printf '%s\n' "$ci" >"$DIR/conninfo$n.tmp"
    mv -f "$DIR/conninfo$n.tmp" "$DIR/conninfo$n"
  fi
  sql "$n" "ALTER SYSTEM SET primary_conninfo = ''"
  sql "$n" "SELECT pg_reload_conf()" >/dev/null
  wait_for 30 "node$n's WAL receiver to stop" is_true "$n" "SELECT NOT EXISTS (SELECT FROM pg_stat_wal_receiver)"
}
cmd_start_receiver() {
  local n=$1 ci up
  need_replica "$n"
  if [[ -f $DIR/conninfo$n ]]; then
    ci=$(<"$DIR/conninfo$n")
    sql "$n" "ALTER SYSTEM SET primary_conninfo = '${ci//\'/\'\'}'"
    sql "$n" "SELECT pg_reload_conf()" >/dev/null
    rm -f "$DIR/conninfo$n"
  else
    log "node$n's WAL receiver was not stopped by stop-receiver"
  fi
  up=$(upstream_of "$n")
  if [[ -n $up ]] && frozen "$up"; then log "node$up (upstream of node$n) is frozen: not waiting"; return 0; fi
  wait_for 60 "node$n's WAL receiver to stream" is_true "$n" \
    "SELECT EXISTS (SELECT FROM pg_stat_wal_receiver WHERE status = 'streaming')"
}

# The silent listener (tests/silent_listener.py): pid in $DIR/silent.pid, port in $DIR/silent.port.
silent_pid() {
  local pid
  [[ -f $DIR/silent.pid ]] || return 1
  pid=$(<"$DIR/silent.pid")
  [[ $pid =~ ^[0-9]+$ ]] && proc_alive "$pid" && grep -qa silent_listener "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}
cmd_silent_start() {
  local port=${1:-0} pid py line
  [[ $port =~ ^[0-9]+$ ]] || die "usage: silent-start [PORT]"
  if pid=$(silent_pid); then
    log "the silent listener is already running (pid $pid)"
    head -n 1 "$DIR/silent.port"
    return 0
  fi
  py=/usr/bin/python3
  [[ -x $py ]] || py=$(command -v python3) || die "python3 not found"
  mkdir -p "$DIR/logs"
  : >"$DIR/silent.port"  # before the background job: read it at once
  "$py" "$HERE/silent_listener.py" "$port" </dev/null >"$DIR/silent.port" 2>>"$DIR/logs/silent.log" &
  pid=$!
  echo "$pid" >"$DIR/silent.pid"
  for _ in {1..100}; do
    if read -r line <"$DIR/silent.port"; then  # a whole line
      log "silent listener on 127.0.0.1:$line (pid $pid)"
      echo "$line"
      return 0
    fi
    proc_alive "$pid" || break
    sleep 0.1
  done
  silent_stop
  tail -n 5 "$DIR/logs/silent.log" >&2 || true
  die "the silent listener did not start"
}
silent_stop() {
  local pid
  if pid=$(silent_pid); then
    kill "$pid" 2>/dev/null || true
    for _ in {1..50}; do proc_alive "$pid" || break; sleep 0.1; done
    if proc_alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
    log "stopped the silent listener (pid $pid)"
  fi
  rm -f "$DIR/silent.pid" "$DIR/silent.port"
}

main() {
  local cmd=${1:-}
  (($#)) && shift
  case $cmd in
    start) find_bindir; cmd_start ;;
    stop) cmd_stop ;;
    uri) load_ports; uri ;;
    uri4) load_ports; uri4 ;;
    port) check_node "${1:-}"; load_ports; echo "${PORTS[$1]}" ;;
    freeze | thaw | pids)
      [[ $# -ge 1 ]] || die "usage: $cmd N"
      "cmd_$cmd" "$@" ;;
    silent-start) cmd_silent_start "$@" ;;
    silent-stop) silent_stop ;;
    status | primary | psql | pause | resume | delay | stop-node | start-node | promote | wait-replay | \
      cascade | sync | async | stop-receiver | start-receiver)
      [[ $cmd == status || $cmd == primary || $cmd == cascade || $cmd == async || $# -ge 1 ]] ||
        die "usage: $cmd N"
      [[ $cmd != delay || $# -ge 2 ]] || die "usage: delay N MILLISECONDS"
      find_bindir
      "cmd_${cmd//-/_}" "$@" ;;
    help | -h | --help) usage ;;
    *) usage; [[ -z $cmd ]] || log "error: unknown command '$cmd'"; exit 2 ;;
  esac
}

main "$@"
