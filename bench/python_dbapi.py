#!/usr/bin/env python3
"""DB-API cursor reads: walrouter.dbapi against psycopg2 on the same replica.

    bench/python_dbapi.py DSN [READS]     (DSN: the cluster's multi-host URI)

One walrouter.dbapi connection in autocommit mode (each read routed; a
session stays on its replica) and one psycopg2 connection to the replica
walrouter chose, both running `SELECT %s::int, 'row ' || %s` through a
cursor with fetchall(). The variants alternate read by read (their order
swapped every read), plus walrouter's own Session.query (the connection's
session, so the same replica) for reference. Prints median and p99 per variant and the ratio of
medians to psycopg2's. Every walrouter read is checked to have run on that
replica.
"""

import statistics
import sys
import time

import psycopg2

import walrouter
from walrouter import dbapi


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    dsn = sys.argv[1]
    reads = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    cluster = walrouter.connect(dsn)
    conn = dbapi.connect(cluster, autocommit=True)
    cur = conn.cursor()
    cur.execute("SELECT 1")
    replica = cur.node
    if replica == cluster.primary:
        sys.exit("walrouter read from the primary: no fresh replica to compare on")
    host, port = replica.rsplit(":", 1)
    user_pw_db = dsn.split("://", 1)[1]
    auth, rest = user_pw_db.split("@", 1)
    db = rest.split("/", 1)[1].split("?", 1)[0]
    user, pw = auth.split(":", 1)
    pg = psycopg2.connect(host=host, port=int(port), user=user, password=pw, dbname=db)
    pg.autocommit = True
    pcur = pg.cursor()
    session = conn.session  # the connection's own session: on the same replica
    sql = "SELECT %s::int, 'row ' || %s"

    def run_psycopg2(i: int) -> None:
        pcur.execute(sql, (i, i))
        pcur.fetchall()

    def run_dbapi(i: int) -> None:
        cur.execute(sql, (i, i))
        cur.fetchall()
        if cur.node != replica:
            raise SystemExit(f"walrouter.dbapi read {i} ran on {cur.node}, not {replica}")

    def run_session(i: int) -> None:
        r = session.query("SELECT $1::int, 'row ' || $2", i, i)
        if r.node != replica:
            raise SystemExit(f"walrouter Session read {i} ran on {r.node}, not {replica}")

    variants = [("psycopg2 cursor", run_psycopg2), ("walrouter.dbapi cursor", run_dbapi),
                ("walrouter Session.query", run_session)]
    times = {name: [] for name, _ in variants}
    for i in range(200):  # warm up: prepared statements, caches
        for _, f in variants:
            f(i)
    clock = time.perf_counter_ns
    for i in range(reads):
        order = variants if i % 2 == 0 else variants[::-1]
        for name, f in order:
            t0 = clock()
            f(i)
            times[name].append(clock() - t0)
    base = statistics.median(times["psycopg2 cursor"])
    print(f"{reads} reads per variant on replica {replica}, interleaved read by read")
    print(f"{'variant':<26} {'median':>10} {'p99':>10} {'ratio':>7}")
    for name, _ in variants:
        med = statistics.median(times[name])
        print(f"{name:<26} {med / 1000:>8.1f}µs {pct(times[name], 0.99) / 1000:>8.1f}µs {med / base:>6.2f}×")
    pg.close()
    conn.close()
    cluster.close()


if __name__ == "__main__":
    main()
