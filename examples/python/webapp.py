#!/usr/bin/python3
"""webapp.py — a small notes service on http.server: every request gets a
walrouter session resumed from the `wr_token` cookie and sends the updated
token back, so a user who posts a note sees it on the next page even while
the replicas lag, and everyone else's reads keep going to replicas.

    /usr/bin/python3 examples/python/webapp.py DSN [--port 8000]
        GET  /        the notes (the footer and the X-Walrouter-Node header
                      say which node served the page, and why)
        POST /notes   form field `note`; redirects to /
        GET  /status  the cluster's status, as JSON

One Cluster for the process, shared by the server's threads; one Session per
request.
"""

import argparse
import html
import json
import os
import signal
import sys
import urllib.parse
from http import cookies
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import walrouter

COOKIE = "wr_token"
SCHEMA = "CREATE TABLE IF NOT EXISTS webapp_notes (id serial PRIMARY KEY, note text NOT NULL, at timestamptz DEFAULT now())"


class Handler(BaseHTTPRequestHandler):
    cluster: walrouter.Cluster  # set by main()

    def session(self) -> walrouter.Session:
        """This request's session, resumed from the visitor's cookie."""
        jar = cookies.SimpleCookie(self.headers.get("Cookie", ""))
        token = jar[COOKIE].value if COOKIE in jar else None
        try:
            return self.cluster.session(token=token)
        except walrouter.TokenError:  # tampered or from another cluster: start afresh
            return self.cluster.session()

    def reply(self, s, status, body, ctype="text/html; charset=utf-8", served=None, headers=()):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Set-Cookie", f"{COOKIE}={s.token}; Path=/; HttpOnly; SameSite=Lax")
        if served is not None:
            self.send_header("X-Walrouter-Node", served.node)
            self.send_header("X-Walrouter-Reason", served.reason)
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with self.session() as s:
            try:
                if self.path == "/":
                    r = s.query("SELECT id, note, at FROM webapp_notes ORDER BY id DESC LIMIT 50")
                    items = "".join(f"<li>#{i} {html.escape(note)} <small>{at:%H:%M:%S}</small></li>"
                                    for i, note, at in r)
                    body = (f"<!doctype html><title>notes</title><h1>Notes ({len(r)})</h1>"
                            f"<form method=post action=/notes><input name=note><button>Post</button></form>"
                            f"<ul>{items}</ul><footer>served by {r.node} ({r.reason})</footer>\n")
                    self.reply(s, 200, body, served=r)
                elif self.path == "/status":
                    nodes = [{"name": n.name, "role": n.role, "state": n.state, "lag_bytes": n.lag_bytes,
                              "served": n.served} for n in self.cluster.status()]
                    self.reply(s, 200, json.dumps(nodes, indent=1) + "\n", "application/json")
                else:
                    self.reply(s, 404, "not found\n", "text/plain")
            except walrouter.OperationalError as e:
                self.reply(s, 503, f"database unavailable: {e}\n", "text/plain")

    def do_POST(self):
        with self.session() as s:
            if self.path != "/notes":
                return self.reply(s, 404, "not found\n", "text/plain")
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            note = form.get("note", [""])[0].strip()
            if not note:
                return self.reply(s, 400, "empty note\n", "text/plain")
            try:
                r = s.write("INSERT INTO webapp_notes (note) VALUES ($1) RETURNING id", note)
            except walrouter.OperationalError as e:
                return self.reply(s, 503, f"database unavailable: {e}\n", "text/plain")
            self.reply(s, 303, f"note #{r.scalar()} saved\n", "text/plain", served=r,
                       headers=[("Location", "/")])

    def log_message(self, fmt, *args):
        sys.stderr.write(f"webapp: {self.address_string()} {fmt % args}\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dsn", nargs="?", default=os.environ.get("WR_DSN"), help="cluster URI (default: $WR_DSN)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    args = ap.parse_args()
    if not args.dsn:
        ap.error("no DSN (give one or set WR_DSN)")
    with walrouter.connect(args.dsn) as cluster:
        with cluster.session() as s:
            s.execute(SCHEMA)
        Handler.cluster = cluster
        server = ThreadingHTTPServer((args.host, args.port), Handler)
        print(f"webapp: listening on http://{args.host}:{server.server_address[1]}/", flush=True)
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))  # stop cleanly on kill
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


if __name__ == "__main__":
    main()
