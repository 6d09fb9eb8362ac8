#!/usr/bin/env bash
# Runs examples/python/demo.py with /usr/bin/python3 against the cluster in
# WR_DSN (scripts/demo.sh sets WR_DSN and WR_CLUSTER_SH), then exercises
# examples/python/webapp.py briefly: start it on a free 127.0.0.1 port, post a
# note while the replicas lag, read the page with and without the cookie, stop
# it. Uses the installed walrouter package when /usr/bin/python3 finds it,
# else the build tree (WR_BUILD_DIR, default build/).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
py=/usr/bin/python3
: "${WR_DSN:?set WR_DSN to the cluster URI (scripts/demo.sh does)}"
if ! "$py" -c 'import walrouter' >/dev/null 2>&1; then
  build=${WR_BUILD_DIR:-$top/build}
  [[ $build == /* ]] || build="$top/$build"
  compgen -G "$build/python/walrouter/_core*.so" >/dev/null ||
    { echo "demo.sh: walrouter is neither installed nor built in $build (cmake --build $build)" >&2; exit 1; }
  export PYTHONPATH="$build/python${PYTHONPATH:+:$PYTHONPATH}"
fi
sh() { [[ -z ${WR_CLUSTER_SH:-} ]] || "$WR_CLUSTER_SH" "$@" >/dev/null; }

"$py" "$here/demo.py" "$WR_DSN"

echo
echo "-- webapp.py: the session token travels in a cookie"
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
"$py" "$here/webapp.py" "$WR_DSN" --port "$port" 2>"$log" &
server=$!
cleanup() {
  kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  sh resume 1 || true; sh resume 2 || true
  rm -f "$log"
}
trap cleanup EXIT
sh wait-replay 1; sh wait-replay 2
if [[ -n ${WR_CLUSTER_SH:-} ]] && sh pause 1 && sh pause 2; then
  echo "(replay paused on both replicas)"
else
  echo "(replay not paused: WR_CLUSTER_SH is not set or cluster.sh failed)"
fi

"$py" - "http://127.0.0.1:$port" <<'PY'
import sys, time, urllib.error, urllib.request
base = sys.argv[1]

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None

opener = urllib.request.build_opener(NoRedirect)

def call(method, path, cookie=None, data=None):
    req = urllib.request.Request(base + path, data=data, method=method)
    if cookie:
        req.add_header("Cookie", cookie)
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as e:  # the 303 after a POST
        return e.code, e.headers, e.read().decode()

for _ in range(200):  # poll until the server listens
    try:
        call("GET", "/status")
        break
    except OSError:
        time.sleep(0.05)

note = f"hello at {time.strftime('%H:%M:%S')}"
status, h, body = call("POST", "/notes", data=f"note={note}".encode())
cookie = h["Set-Cookie"].split(";")[0]
print(f"POST /notes              -> {status} {body.strip():<16} node {h['X-Walrouter-Node']} ({h['X-Walrouter-Reason']})")
print(f"   cookie: {cookie}")
status, h, body = call("GET", "/", cookie)
print(f"GET / with the cookie    -> {status} sees the note: {note in body!s:<5}  node {h['X-Walrouter-Node']} ({h['X-Walrouter-Reason']})")
status, h, body = call("GET", "/")
print(f"GET / as another visitor -> {status} sees the note: {note in body!s:<5}  node {h['X-Walrouter-Node']} ({h['X-Walrouter-Reason']})")
PY
sh resume 1; sh resume 2; sh wait-replay 1; sh wait-replay 2
[[ -z ${WR_CLUSTER_SH:-} ]] || echo "(replay resumed)"
"$py" - "http://127.0.0.1:$port" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/", timeout=10) as r:
    print(f"GET / as another visitor -> {r.status} node {r.headers['X-Walrouter-Node']} ({r.headers['X-Walrouter-Reason']})")
PY
kill "$server"; wait "$server" || true
echo "webapp stopped"
