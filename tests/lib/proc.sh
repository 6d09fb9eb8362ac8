# shellcheck shell=bash
# tests/lib/proc.sh — process bookkeeping shared by tests/cluster.sh and
# tests/patroni.sh, sourced by both. Everything reads /proc; nothing signals a
# process that the caller's node layout ($DIR/nodeN) does not own.

# proc_field PID I: field I (3 = state, 4 = parent pid, 22 = start time) of /proc/PID/stat.
proc_field() {
  local l
  local -a fields
  { read -r l <"/proc/$1/stat"; } 2>/dev/null || return 1
  read -ra fields <<<"${l##*) }"  # the command name (field 2) may contain spaces and ')'
  echo "${fields[$2 - 3]}"
}
proc_alive() { local s; s=$(proc_field "$1" 3) && [[ $s != [ZX] ]]; }

# descendants PID: the pids of PID's children, their children, ...
descendants() {
  local s l p c
  local -A kids=()
  for s in /proc/[0-9]*/stat; do
    { read -r l <"$s"; } 2>/dev/null || continue
    p=${s#/proc/} l=${l##*) }
    p=${p%/stat} l=${l#* }
    kids[${l%% *}]+="$p "
  done
  local -a todo=("$1")
  while ((${#todo[@]})); do
    p=${todo[-1]}
    unset 'todo[-1]'
    for c in ${kids[$p]:-}; do echo "$c"; todo+=("$c"); done
  done
}

# postmaster_pid N: the pid of node N's running postmaster, from its pid file; checked to be a
# postgres process whose working directory is node N's data directory ($DIR/nodeN).
postmaster_pid() {
  local f="$DIR/node$1/postmaster.pid" pid
  [[ -f $f ]] || return 1
  pid=$(head -n 1 "$f" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && proc_alive "$pid" || return 1
  grep -qa postgres "/proc/$pid/cmdline" 2>/dev/null || return 1
  [[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == "$(realpath "$DIR/node$1")" ]] || return 1
  echo "$pid"
}

# wait_gone SECONDS PID...: polls until every PID has exited; 1 if some still run.
wait_gone() {
  local deadline=$((SECONDS + $1)) p alive
  shift
  while :; do
    alive=""
    for p in "$@"; do if proc_alive "$p"; then alive=$p; break; fi; done
    [[ -n $alive ]] || return 0
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# thaw_recorded FILE N: SIGCONT the pids FILE recorded as "pid starttime" lines (those still
# alive with the same start time) and everything node_pids N (the caller's) lists now, which
# covers an interrupted freeze; then removes FILE.
thaw_recorded() {
  local f=$1 pid st
  local -a pids=()
  if [[ -f $f ]]; then
    while read -r pid st; do
      if [[ $pid =~ ^[0-9]+$ && $(proc_field "$pid" 22 2>/dev/null) == "$st" ]]; then pids+=("$pid"); fi
    done <"$f"
  fi
  mapfile -t -O "${#pids[@]}" pids < <(node_pids "$2" || true)
  if ((${#pids[@]})); then kill -CONT "${pids[@]}" 2>/dev/null || true; fi
  rm -f "$f"
}
