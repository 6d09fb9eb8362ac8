#!/usr/bin/python3
"""python_aio.py — asyncio reads per second with many concurrent tasks on one
event loop: walrouter.aio against asyncpg, reading the same row of the same
replica, in one run.

    python_aio.py DSN [--tasks 64] [--seconds 3] [--runs 3]
        (DSN: a primary and ONE replica, as bench/run.sh passes one)

Variants, each run for --seconds with --tasks tasks reading in a loop, in a
fresh random order in every run (interleaved, so drift hits all alike); the
report gives each variant's median reads/s over the runs, their spread, and
the ratio of the medians to asyncpg's:
  walrouter       one AsyncSession per task, session.query (the replica, its
                  position cached: one round trip per read); every read is
                  checked to come from the replica
  walrouter_new   a new AsyncSession per read, as a web request would do
  asyncpg         one asyncpg connection per task, conn.fetch (prepared
                  statement cache: asyncpg's default)
  asyncpg_pool    an asyncpg pool of --tasks connections, acquire per read
Every variant has --tasks connections to the replica, opened before timing.
"""

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from typing import Awaitable, Callable, Dict, List
from urllib.parse import unquote, urlsplit

import asyncpg

import walrouter
import walrouter.aio

QUERY = "SELECT id, v FROM bench_items WHERE id = $1::int"


def replica_params(dsn: str, cluster: walrouter.Cluster) -> Dict[str, object]:
    """asyncpg connect() arguments for the cluster's one replica."""
    replicas = [n for n in cluster.nodes if n != cluster.primary]
    if len(replicas) != 1:
        sys.exit(f"python_aio: the DSN must name a primary and ONE replica, found {len(replicas)} replicas")
    u = urlsplit(dsn)
    host, port = replicas[0].rsplit(":", 1)
    userinfo = u.netloc.rsplit("@", 1)[0] if "@" in u.netloc else ""
    user, _, password = userinfo.partition(":")
    return {"host": host, "port": int(port), "user": unquote(user) or None,
            "password": unquote(password) or None, "database": u.path.lstrip("/") or None}


async def timed(seconds: float, tasks: int, read: Callable[[int, int], Awaitable[None]]) -> float:
    """Reads per second: `tasks` tasks calling read(task, i) until time is up."""
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds
    counts = [0] * tasks

    async def worker(t: int) -> None:
        i = t
        while loop.time() < stop:
            await read(t, i % 1000 + 1)
            i += 7
            counts[t] += 1

    start = loop.time()
    await asyncio.gather(*(worker(t) for t in range(tasks)))
    return sum(counts) / (loop.time() - start)


async def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("dsn", nargs="?", default=os.environ.get("WR_BENCH_DSN"))
    ap.add_argument("--tasks", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if not args.dsn:
        ap.error("no DSN (give one or set WR_BENCH_DSN)")
    n = args.tasks

    # A saturated 2-CPU machine can take longer than the default 200 ms read
    # budget; the bench measures reads, not fallbacks to the primary.
    cluster = await walrouter.aio.connect(args.dsn, pool_size=n + 4, pool_max=n + 4, read_budget_ms=10000)
    async with cluster.session() as s:
        await s.execute("CREATE TABLE IF NOT EXISTS bench_items (id int PRIMARY KEY, v text)")
        await s.execute("INSERT INTO bench_items SELECT g, 'item ' || g FROM generate_series(1, 1000) g "
                        "ON CONFLICT DO NOTHING")
        token = s.token
    replica = [x for x in cluster.nodes if x != cluster.primary][0]
    params = replica_params(args.dsn, cluster.sync)
    conns = [await asyncpg.connect(**params) for _ in range(n)]  # type: ignore[arg-type]
    pool = await asyncpg.create_pool(min_size=n, max_size=n, **params)  # type: ignore[arg-type]
    for c in conns:
        assert await c.fetchval("SELECT pg_is_in_recovery()"), "asyncpg must read the replica"

    sessions = [cluster.session(token=token) for _ in range(n)]
    # Warm: the replica's position is known and every task's connection exists.
    await asyncio.gather(*(sx.query(QUERY, 1) for sx in sessions))
    wrong: List[str] = []

    async def wr_read(t: int, i: int) -> None:
        r = await sessions[t].query(QUERY, i)
        if r.node != replica:
            wrong.append(f"{r.node} ({r.reason})")

    async def wr_new_read(t: int, i: int) -> None:
        async with cluster.session(token=token) as sx:
            r = await sx.query(QUERY, i)
        if r.node != replica:
            wrong.append(f"{r.node} ({r.reason})")

    async def pg_read(t: int, i: int) -> None:
        await conns[t].fetch(QUERY, i)

    async def pool_read(t: int, i: int) -> None:
        async with pool.acquire() as c:
            await c.fetch(QUERY, i)

    variants: Dict[str, Callable[[int, int], Awaitable[None]]] = {
        "walrouter": wr_read, "walrouter_new": wr_new_read, "asyncpg": pg_read, "asyncpg_pool": pool_read}
    for name, read in variants.items():  # warm-up, not reported
        await timed(min(0.5, args.seconds), n, read)
    results: Dict[str, List[float]] = {name: [] for name in variants}
    print(f"python_aio: {n} tasks, {args.seconds:g} s per variant, {args.runs} runs, replica {replica}, "
          f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for run in range(args.runs):
        order = list(variants)
        random.shuffle(order)
        for name in order:
            rate = await timed(args.seconds, n, variants[name])
            results[name].append(rate)
            print(f"  run {run + 1}: {name:<14} {rate:9.0f} reads/s")
    if wrong:
        sys.exit(f"python_aio: {len(wrong)} walrouter reads did not come from the replica, e.g. {wrong[0]}")
    base = statistics.median(results["asyncpg"])
    print(f"{'variant':<14} {'median':>9} {'min':>9} {'max':>9}  vs asyncpg")
    for name, rates in results.items():
        med = statistics.median(rates)
        print(f"{name:<14} {med:9.0f} {min(rates):9.0f} {max(rates):9.0f}  {med / base:5.2f}x")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    for sx in sessions:
        await sx.close()
    for c in conns:
        await c.close()
    await pool.close()
    await cluster.close()


if __name__ == "__main__":
    t0 = time.monotonic()
    asyncio.run(main())
    print(f"python_aio: done in {time.monotonic() - t0:.1f} s")
