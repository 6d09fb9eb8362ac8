#!/usr/bin/python3
"""aiohttp_app.py — a small notes service on aiohttp and walrouter.aio: every
request gets a walrouter session resumed from the `wr_token` cookie and sends
the updated token back, so a user who posts a note sees it on the next page
even while the replicas lag, and everyone else's reads keep going to replicas.
Statements run on the event loop (no thread per request).

    /usr/bin/python3 examples/python/aiohttp_app.py DSN [--port 8000]
        GET  /            the notes, as JSON; the X-Walrouter-Node and
                          X-Walrouter-Reason headers say which node served
                          the read, and why
        POST /notes       form field `note`; answers 201 with the new id
        GET  /status      the cluster's status, as JSON

One AsyncCluster for the application (opened on startup, closed on cleanup),
one AsyncSession per request (a middleware).
"""

import argparse
import os
from typing import Any, Awaitable, Callable, Optional

from aiohttp import web

import walrouter
import walrouter.aio

COOKIE = "wr_token"
SCHEMA = "CREATE TABLE IF NOT EXISTS aiohttp_notes (id serial PRIMARY KEY, note text NOT NULL, at timestamptz DEFAULT now())"

CLUSTER = "walrouter_cluster"  # the app's key for its AsyncCluster


def cluster_of(request: web.Request) -> walrouter.aio.AsyncCluster:
    cluster: walrouter.aio.AsyncCluster = request.app[CLUSTER]
    return cluster


@web.middleware
async def walrouter_session(request: web.Request,
                            handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Opens request["wr"], resumed from the cookie (a tampered or foreign
    token starts a fresh session), and sets the cookie to its new token."""
    cluster = cluster_of(request)
    token: Optional[str] = request.cookies.get(COOKIE)
    try:
        s = cluster.session(token=token)
    except walrouter.TokenError:
        s = cluster.session()
    async with s:
        request["wr"] = s
        try:
            response = await handler(request)
        except walrouter.OperationalError as e:
            response = web.json_response({"error": f"database unavailable: {e}"}, status=503)
        response.set_cookie(COOKIE, s.token, path="/", httponly=True, samesite="Lax")
        return response


async def list_notes(request: web.Request) -> web.Response:
    s: walrouter.aio.AsyncSession = request["wr"]
    r = await s.query("SELECT id, note FROM aiohttp_notes ORDER BY id DESC LIMIT 50")
    return web.json_response({"notes": [{"id": i, "note": note} for i, note in r]},
                             headers={"X-Walrouter-Node": r.node or "", "X-Walrouter-Reason": r.reason})


async def add_note(request: web.Request) -> web.Response:
    s: walrouter.aio.AsyncSession = request["wr"]
    form = await request.post()
    note = str(form.get("note", "")).strip()
    if not note:
        return web.json_response({"error": "empty note"}, status=400)
    r = await s.write("INSERT INTO aiohttp_notes (note) VALUES ($1) RETURNING id", note)
    return web.json_response({"id": r.scalar()}, status=201,
                             headers={"X-Walrouter-Node": r.node or "", "X-Walrouter-Reason": r.reason})


async def status(request: web.Request) -> web.Response:
    nodes = [{"name": n.name, "role": n.role, "state": n.state, "lag_bytes": n.lag_bytes, "served": n.served}
             for n in await cluster_of(request).status()]
    return web.json_response(nodes)


def make_app(dsn: str, **options: Any) -> web.Application:
    """The application; the cluster opens on startup and closes on cleanup."""

    async def lifetime(app: web.Application) -> Any:
        cluster = await walrouter.aio.connect(dsn, **options)
        async with cluster.session() as s:
            await s.execute(SCHEMA)
        app[CLUSTER] = cluster
        yield
        await cluster.close()

    app = web.Application(middlewares=[walrouter_session])
    app.cleanup_ctx.append(lifetime)
    app.add_routes([web.get("/", list_notes), web.post("/notes", add_note), web.get("/status", status)])
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("dsn", nargs="?", default=os.environ.get("WR_DSN"), help="cluster URI (default: $WR_DSN)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    args = ap.parse_args()
    if not args.dsn:
        ap.error("no DSN (give one or set WR_DSN)")
    web.run_app(make_app(args.dsn), host=args.host, port=args.port,
                print=lambda msg: print(f"aiohttp_app: {msg}", flush=True))


if __name__ == "__main__":
    main()
