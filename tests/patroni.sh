#!/usr/bin/env bash
# A throwaway Patroni-managed PostgreSQL 15 cluster for walrouter tests: one etcd
# (Debian etcd-server) and three Patroni nodes (node0-node2) on 127.0.0.1, with a short
# TTL and loop_wait so that a failover takes seconds, synchronous_mode (a crash failover
# loses no acknowledged commit), pg_rewind for rejoining old leaders, and
# primary_start_timeout = 0 (a crashed leader fails over instead of restarting).
# Run without arguments for help. Progress goes to stderr; `start` prints the multi-host URI
# as the last line of stdout. Only processes this script started (recorded with their start
# time) and postmasters of its own data directories are ever signalled.
set -euo pipefail

DIR=${WR_PATRONI_DIR:-/tmp/walrouter-patroni}
[[ $DIR == /* ]] || DIR="$PWD/$DIR"
# shellcheck source=tests/lib/proc.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/proc.sh"
ETCD_PORT=${WR_PATRONI_ETCD_PORT:-25520}    # client; peer = +1
REST_BASE=${WR_PATRONI_REST_PORT:-25530}    # node i: +i
PG_BASE=${WR_PATRONI_PG_PORT:-25540}        # node i: +i
TTL=${WR_PATRONI_TTL:-10} LOOP_WAIT=1 RETRY_TIMEOUT=3
SCOPE=walrouter-patroni
WR_USER=walrouter WR_PASS=walrouter-secret WR_DB=walrouter
SU_PASS=patroni-superuser REPL_PASS=patroni-replicator
NODES=(0 1 2)
SOCK="$DIR/sock"
cd /  # binaries run as `postgres` must not start in an unreadable cwd (e.g. /root)

log() { printf 'patroni.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() {
  cat >&2 <<EOF
usage: $0 COMMAND [ARGS]        (state dir: $DIR)
  start            (re)create etcd (port $ETCD_PORT) and Patroni nodes node0-node2 (REST
                   $REST_BASE-$((REST_BASE + 2)), PostgreSQL $PG_BASE-$((PG_BASE + 2))); wait for a
                   leader and two streaming replicas; print the URI
  stop             stop Patroni (and so PostgreSQL) and etcd, thawing frozen nodes;
                   remove the state dir
  status           one line per node: role, state, timeline, lag (Patroni's view),
                   plus frozen / stopped
  uri              print the multi-host URI of the three nodes (user $WR_USER)
  leader           print the number of the node that holds the leader key
  wait-healthy [S] wait (up to S s, default 120) for a leader and two replicas streaming
                   from it on its timeline, one of them its synchronous standby
  switchover       planned: patronictl switchover; wait for the new leader
  failover         patronictl failover to the synchronous standby; wait for it to lead
  kill-leader      SIGKILL the leader's postmaster (Patroni fails over at once); wait for
                   the new leader
  freeze-leader S  SIGSTOP the leader's Patroni and PostgreSQL processes, wait S seconds
                   (past the TTL of ${TTL}s) and until another node leads, SIGCONT them
                   (Patroni then demotes the old leader)
                   These four print "OLD NEW AT": the old and new leader's numbers, and
                   when the action began (seconds since 1970, date +%s.%N)
  psql N [SQL]     psql on node N as superuser (db $WR_DB)
  logs N           print the tail of node N's Patroni log
EOF
}

# ---- binaries, users -----------------------------------------------------------
BIN=/usr/lib/postgresql/15/bin
need_packages() {
  local missing=()
  [[ -x $BIN/initdb ]] || missing+=(postgresql-15)
  command -v patroni >/dev/null 2>&1 || missing+=(patroni)
  command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
  ((${#missing[@]})) || return 0
  [[ $EUID -eq 0 ]] || die "missing: ${missing[*]} (install them, or run as root)"
  log "installing ${missing[*]} with apt-get"
  { apt-get install -y "${missing[@]}" || { apt-get update && apt-get install -y "${missing[@]}"; }; } >&2 ||
    die "apt-get install ${missing[*]} failed"
}
# "${AS_PG[@]}" CMD...: run CMD as `postgres` when root. Each program execs the next, so $! of
# a background "${AS_PG[@]}" CMD & is CMD's own pid (a shell function would be a subshell).
AS_PG=(env HOME="$DIR")
[[ $EUID -ne 0 ]] || AS_PG+=(setpriv --reuid=postgres --regid=postgres --init-groups --)
as_pg() { "${AS_PG[@]}" "$@"; }
pgport() { echo $((PG_BASE + $1)); }
restport() { echo $((REST_BASE + $1)); }
uri() { echo "postgresql://$WR_USER:$WR_PASS@127.0.0.1:$(pgport 0),127.0.0.1:$(pgport 1),127.0.0.1:$(pgport 2)/$WR_DB"; }

# ---- processes we started: $DIR/run/NAME holds "pid starttime" -----------------
record() { echo "$2 $(proc_field "$2" 22)" >"$DIR/run/$1"; }
# own_pid NAME: the recorded pid of NAME if that process still runs (same start time).
own_pid() {
  local pid st
  [[ -f $DIR/run/$1 ]] || return 1
  read -r pid st <"$DIR/run/$1" || return 1
  [[ $pid =~ ^[0-9]+$ ]] && proc_alive "$pid" && [[ $(proc_field "$pid" 22) == "$st" ]] || return 1
  echo "$pid"
}
# node_pids N: node N's Patroni, its descendants (the postmaster Patroni started and its
# children), and a postmaster of node N's data directory left by another Patroni.
node_pids() {
  local p pm
  if p=$(own_pid "patroni$1"); then echo "$p"; descendants "$p"; fi
  if pm=$(postmaster_pid "$1") && [[ $(proc_field "$pm" 4) != "${p:-x}" ]]; then echo "$pm"; descendants "$pm"; fi
}
# thaw N: SIGCONT what `freeze-leader` stopped on node N and everything of node N now.
thaw() { thaw_recorded "$DIR/run/frozen$1" "$1"; }

# ---- Patroni's view (REST API of any answering node) ----------------------------
cluster_json() {
  local i
  for i in "${NODES[@]}"; do
    [[ ! -f $DIR/run/frozen$i ]] || continue
    curl -sf --max-time 2 "http://127.0.0.1:$(restport "$i")/cluster" 2>/dev/null && return 0
  done
  return 1
}
# members: "name role state timeline lag" per member (lag "-" when unknown). jq when there is
# one (python3 takes long to start on a busy machine).
members() {
  if command -v jq >/dev/null 2>&1; then
    cluster_json | jq -r '.members[]? | "\(.name) \(.role // "?") \(.state // "?") \(.timeline // 0) \(.lag // "-")"'
    return
  fi
  cluster_json | python3 -c '
import json, sys
for m in json.load(sys.stdin).get("members", []):
    print(m["name"], m.get("role", "?"), m.get("state", "?"), m.get("timeline", 0) or 0, m.get("lag", "-"))'
}
leader_node() {
  local name role state rest
  while read -r name role state rest; do
    [[ $role == leader && $state == running ]] && { echo "${name#node}"; return 0; }
  done < <(members 2>/dev/null)
  return 1
}
sync_standby() {
  local name role rest
  while read -r name role rest; do
    [[ $role == sync_standby ]] && { echo "${name#node}"; return 0; }
  done < <(members 2>/dev/null)
  return 1
}
# healthy: a running leader, two replicas streaming from it on its timeline, one of them its
# synchronous standby (until Patroni has named one, commits do not wait for a replica).
healthy() {
  local name role state tl lag l ltl="" n=0 sync=0
  local -a m
  mapfile -t m < <(members 2>/dev/null)
  for l in "${m[@]}"; do read -r name role state tl lag <<<"$l"; [[ $role != leader || $state != running ]] || ltl=$tl; done
  [[ -n $ltl ]] || return 1
  for l in "${m[@]}"; do
    read -r name role state tl lag <<<"$l"
    [[ $role == replica || $role == sync_standby ]] && [[ $state == running || $state == streaming ]] &&
      [[ $tl == "$ltl" && $lag =~ ^[0-9]+$ ]] && n=$((n + 1))
    [[ $role != sync_standby ]] || sync=1
  done
  ((n == 2 && sync)) && sql "$(leader_node)" "SELECT count(*) FILTER (WHERE state = 'streaming') = 2
    AND count(*) FILTER (WHERE sync_state = 'sync') = 1 FROM pg_stat_replication" | grep -qx t
}
wait_for() {  # wait_for SECONDS WHAT COMMAND...: poll COMMAND every 0.2 s
  local timeout=$1 what=$2 deadline=$((SECONDS + $1)); shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what"
    sleep 0.2
  done
}
new_leader() {  # new_leader OLD: a running leader other than OLD
  local l
  l=$(leader_node) && [[ $l != "$1" ]] && echo "$l"
}
# wait_new_leader OLD [SECONDS]: print "OLD NEW AT", AT being when the action began (the
# wall clock, seconds since 1970, from mark_action).
mark_action() { ACTION_AT=$(date +%s.%N); }
wait_new_leader() {
  local new
  wait_for "${2:-90}" "a new leader (not node$1)" new_leader "$1"
  new=$(new_leader "$1")
  echo "$1 $new ${ACTION_AT:-0}"
}
need_leader() { leader_node || die "no running leader (see: $0 status)"; }

sql() {  # sql N SQL: psql on node N over its unix socket as the superuser
  PGCONNECT_TIMEOUT=5 PGPASSWORD=$SU_PASS as_pg "$BIN/psql" -X -A -t -q -v ON_ERROR_STOP=1 \
    -h "$SOCK" -p "$(pgport "$1")" -U postgres -d "${QDB:-$WR_DB}" -c "$2"
}

# ---- start / stop ----------------------------------------------------------------
write_config() {
  local i=$1
  cat >"$DIR/node$i.yml" <<EOF
scope: $SCOPE
namespace: /walrouter-test/
name: node$i
log:
  level: INFO
restapi:
  listen: 127.0.0.1:$(restport "$i")
  connect_address: 127.0.0.1:$(restport "$i")
etcd:
  host: 127.0.0.1:$ETCD_PORT
bootstrap:
  dcs:
    ttl: $TTL
    loop_wait: $LOOP_WAIT
    retry_timeout: $RETRY_TIMEOUT
    maximum_lag_on_failover: 1048576
    primary_start_timeout: 0
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        hot_standby_feedback: "on"
        wal_log_hints: "on"
        max_connections: 200
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 256MB
        wal_receiver_status_interval: 1s
        wal_retrieve_retry_interval: 1s
        track_commit_timestamp: "on"
        synchronous_commit: "on"
        shared_buffers: 32MB
        fsync: "off"
        full_page_writes: "on"
  initdb:
    - encoding: UTF8
    - locale: C
    - auth-local: trust
    - auth-host: scram-sha-256
    - no-sync
postgresql:
  listen: 127.0.0.1:$(pgport "$i")
  connect_address: 127.0.0.1:$(pgport "$i")
  data_dir: $DIR/node$i
  bin_dir: $BIN
  pgpass: $DIR/pgpass$i
  basebackup:
    - checkpoint: fast
    - no-sync
  authentication:
    superuser: {username: postgres, password: $SU_PASS}
    replication: {username: replicator, password: $REPL_PASS}
    rewind: {username: postgres, password: $SU_PASS}
  parameters:
    unix_socket_directories: $SOCK
    logging_collector: "on"
    log_directory: $DIR/logs
    log_filename: pg-node$i.log
    log_min_messages: warning
  pg_hba:
    - local all all trust
    - local replication all trust
    - host all all 127.0.0.1/32 scram-sha-256
    - host replication all 127.0.0.1/32 scram-sha-256
watchdog:
  mode: "off"
tags: {}
EOF
}

start_patroni() {
  local i=$1
  "${AS_PG[@]}" patroni "$DIR/node$i.yml" >>"$DIR/logs/patroni$i.log" 2>&1 </dev/null &
  record "patroni$i" $!
}

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Stop everything of the cluster in $DIR (also after an interrupted run) and remove it.
teardown() {
  local i p
  local -a pids=()
  [[ -e $DIR ]] || return 0
  [[ -d $DIR/run || -f $DIR/node0.yml || -z $(ls -A "$DIR") ]] ||
    die "$DIR exists but does not look like a walrouter Patroni cluster; refusing to remove it"
  for i in "${NODES[@]}"; do thaw "$i"; done
  # A throwaway cluster: no graceful shutdown (Patroni's takes seconds per node). Patroni
  # first, so that it restarts nothing, then an immediate shutdown of each postmaster.
  for i in "${NODES[@]}"; do if p=$(own_pid "patroni$i"); then kill -KILL "$p" 2>/dev/null || true; pids+=("$p"); fi; done
  ((${#pids[@]} == 0)) || wait_gone 10 "${pids[@]}" || true
  pids=()
  for i in "${NODES[@]}"; do if p=$(postmaster_pid "$i"); then kill -QUIT "$p" 2>/dev/null || true; pids+=("$p"); fi; done
  ((${#pids[@]} == 0)) || wait_gone 10 "${pids[@]}" || true
  for i in "${NODES[@]}"; do
    mapfile -t pids < <(node_pids "$i" || true)
    if ((${#pids[@]})); then kill -KILL "${pids[@]}" 2>/dev/null || true; wait_gone 10 "${pids[@]}" || true; fi
  done
  if p=$(own_pid etcd); then kill -TERM "$p" 2>/dev/null || true; wait_gone 10 "$p" || { kill -KILL "$p" 2>/dev/null || true; }; fi
  rm -rf "$DIR"
}

cmd_start() {
  local t0=$SECONDS i p
  need_packages
  [[ $EUID -ne 0 ]] || id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user"
  [[ ! -e $DIR ]] || log "removing the previous cluster in $DIR"
  teardown
  for p in "$ETCD_PORT" $((ETCD_PORT + 1)) $(restport 0) $(restport 1) $(restport 2) $(pgport 0) $(pgport 1) $(pgport 2); do
    ! port_taken "$p" || die "port $p is taken (by another cluster?)"
  done
  mkdir -p "$DIR/run" "$DIR/logs" "$SOCK" "$DIR/etcd"
  chmod 700 "$DIR/etcd"
  for i in "${NODES[@]}"; do write_config "$i"; done
  if [[ $EUID -eq 0 ]]; then
    chown -R postgres:postgres "$DIR"
    as_pg test -w "$DIR" || die "user postgres cannot write to $DIR (choose another WR_PATRONI_DIR)"
  fi
  log "etcd on 127.0.0.1:$ETCD_PORT"
  # Patroni talks to etcd through its v2 API: there it renews the leader key by compare-and-swap.
  # Patroni 3.0.2's etcd3 code renews it with a plain put when its cached view says it leads, so
  # a leader resumed after its lease expired (freeze-leader) could take the key back from the
  # new leader, which Patroni then rewound, discarding writes it had acknowledged.
  "${AS_PG[@]}" etcd --name walrouter-test --data-dir "$DIR/etcd/data" --enable-v2 \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster "walrouter-test=http://127.0.0.1:$((ETCD_PORT + 1))" \
    --log-level warn >>"$DIR/logs/etcd.log" 2>&1 </dev/null &
  record etcd $!
  wait_for 30 "etcd" curl -sf --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"
  log "Patroni node0 bootstraps the cluster"
  start_patroni 0
  wait_for 90 "node0 to lead" leader_node
  QDB=postgres sql 0 "CREATE ROLE $WR_USER LOGIN SUPERUSER PASSWORD '$WR_PASS'" >/dev/null
  QDB=postgres sql 0 "CREATE DATABASE $WR_DB OWNER $WR_USER" >/dev/null
  log "Patroni node1, node2 clone it"
  start_patroni 1
  start_patroni 2
  wait_for 120 "two replicas streaming from node0" healthy
  log "cluster up in $((SECONDS - t0))s"
  uri
}

cmd_stop() {
  [[ -e $DIR ]] || { log "no cluster in $DIR"; return 0; }
  teardown
  log "stopped, removed $DIR"
}

cmd_status() {
  local i name role state tl lag l found
  local -a m
  [[ -d $DIR/run ]] || die "no cluster in $DIR (run: $0 start)"
  mapfile -t m < <(members 2>/dev/null || true)
  for i in "${NODES[@]}"; do
    found=""
    for l in "${m[@]}"; do
      read -r name role state tl lag <<<"$l"
      [[ $name == "node$i" ]] && found="role=$role state=$state timeline=$tl lag=$lag"
    done
    if [[ -f $DIR/run/frozen$i ]]; then found="frozen${found:+ (last seen: $found)}"
    elif ! own_pid "patroni$i" >/dev/null; then found="patroni stopped"
    fi
    echo "node$i port=$(pgport "$i") rest=$(restport "$i") ${found:-unknown}"
  done
}

ctl() { patronictl -c "$DIR/node0.yml" "$@"; }

# cmd_move switchover|failover: planned, or to the synchronous standby.
cmd_move() {
  local kind=$1 old cand=""
  local -a args=()
  old=$(need_leader)
  if [[ $kind == failover ]]; then
    wait_for 60 "a synchronous standby to fail over to" sync_standby
    cand=$(sync_standby)
    args=(--candidate "node$cand")
  fi
  log "$kind from node$old${cand:+ to node$cand}"
  mark_action
  ctl "$kind" --leader "node$old" "${args[@]}" --force "$SCOPE" >&2 || die "patronictl $kind failed"
  wait_new_leader "$old"
}

cmd_kill_leader() {
  local old pm
  old=$(need_leader)
  pm=$(postmaster_pid "$old") || die "node$old has no running postmaster"
  log "SIGKILL of node$old's postmaster $pm"
  mark_action
  kill -KILL "$pm"
  wait_new_leader "$old"
}

cmd_freeze_leader() {
  local s=${1:-} old t0=$SECONDS pid
  local -a pids
  [[ $s =~ ^[0-9]+$ ]] || die "usage: freeze-leader SECONDS"
  old=$(need_leader)
  mapfile -t pids < <(node_pids "$old")
  ((${#pids[@]})) || die "node$old has no processes"
  : >"$DIR/run/frozen$old"
  for pid in "${pids[@]}"; do echo "$pid $(proc_field "$pid" 22)" >>"$DIR/run/frozen$old"; done
  log "SIGSTOP of node$old's Patroni and PostgreSQL (${#pids[@]} processes) for ${s}s"
  mark_action
  kill -STOP "${pids[@]}" 2>/dev/null || true
  # Backends forked after the stop (connections accepted before it) are stopped too.
  while ((SECONDS - t0 < s)); do
    mapfile -t pids < <(node_pids "$old")
    for pid in "${pids[@]}"; do
      [[ $(proc_field "$pid" 3) == T ]] && continue
      echo "$pid $(proc_field "$pid" 22)" >>"$DIR/run/frozen$old"
      kill -STOP "$pid" 2>/dev/null || true
    done
    sleep 0.2
  done
  local out
  if ! out=$(wait_new_leader "$old" 60); then thaw "$old"; die "no new leader while node$old was frozen"; fi
  log "SIGCONT of node$old"
  thaw "$old"
  echo "$out"
}

cmd_psql() {
  [[ ${1:-} =~ ^[0-2]$ ]] || die "usage: psql N [SQL]"
  if [[ $# -ge 2 ]]; then sql "$1" "$2"
  else PGPASSWORD=$SU_PASS as_pg "$BIN/psql" -X -h "$SOCK" -p "$(pgport "$1")" -U postgres -d "$WR_DB"; fi
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  uri) uri ;;
  leader) need_leader ;;
  wait-healthy) wait_for "${2:-120}" "a leader and two streaming replicas" healthy ;;
  switchover | failover) cmd_move "$1" ;;
  kill-leader) cmd_kill_leader ;;
  freeze-leader) shift; cmd_freeze_leader "$@" ;;
  psql) shift; cmd_psql "$@" ;;
  logs) [[ ${2:-} =~ ^[0-2]$ ]] || die "usage: logs N"; tail -n 40 "$DIR/logs/patroni$2.log" ;;
  -h | --help | help | "") usage; [[ -n ${1:-} ]] ;;
  *) usage; die "unknown command '$1'" ;;
esac
