#!/usr/bin/python3
"""bench_python.py — what walrouter costs on a replica read from Python,
measured in one run against psycopg2 and psycopg 3 reading the same row of
the same replica, each driver by its default path and by its best path.

    bench_python.py DSN [ITERATIONS]    (DSN: a primary and ONE replica;
                                         bench/run.sh passes one)

Every variant has its own connection (its own backend) to the same replica,
opened before any measured read and checked (pg_is_in_recovery(),
inet_server_port()) before and after; walrouter's node is checked per read.
The variants are alternated read by read, in a fresh random order for every
read, so drift and periodic work hit all alike. Each reports the median, p90
and p99 of per-read latencies, including the conversion of the row to Python
values, and the ratio of the median to psycopg2's best path:
  psycopg2_default   cursor.execute("... %s") + fetchall, autocommit: the
                     parameters interpolated on the client, simple protocol
  psycopg2_prepared  its best path: PREPARE once on the connection, then
                     cursor.execute("EXECUTE bench_q(%s)") (a server-side
                     prepared statement; psycopg2 has no extended protocol)
  psycopg3_default   cursor.execute + fetchall, autocommit: server-side
                     binding, prepared from the 5th run on (psycopg's default);
                     after the warm-up this is also its best path. The
                     psycopg 3 installed here is its pure-Python build.
  walrouter          session.query on one session: its default path, which is
                     also its best (a named prepared statement, cached per
                     pooled connection; the replica's position is known)
  walrouter_new      a new session per read, as a web request would do
Then throughput: 8 threads sharing one walrouter Cluster (a session each),
and 8 threads with a psycopg2 connection each (both paths); every connection
is opened and warmed before the clock starts.
"""

import os
import random
import statistics
import sys
import threading
import time

import psycopg
import psycopg2
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import walrouter

QUERY = "SELECT id, v FROM bench_items WHERE id = $1::int"
QUERY_PG = "SELECT id, v FROM bench_items WHERE id = %s::int"
PREPARE_PG = "PREPARE bench_q(int) AS SELECT id, v FROM bench_items WHERE id = $1"
EXECUTE_PG = "EXECUTE bench_q(%s)"
THREADS = 8


def replica_conninfo(dsn, cluster):
    """libpq conninfo for the cluster's one replica (the other node of DSN)."""
    params = conninfo_to_dict(dsn)
    hosts, ports = params["host"].split(","), params.get("port", "5432").split(",")
    replicas = [i for i, name in enumerate(cluster.nodes) if name != cluster.primary]
    if len(replicas) != 1:
        sys.exit(f"bench_python: the DSN must name a primary and ONE replica, found {len(replicas)} replicas")
    i = replicas[0]
    params.update(host=hosts[i], port=ports[i] if len(ports) > 1 else ports[0])
    return make_conninfo(**params), cluster.nodes[i]


def setup(cluster):
    with cluster.session() as s:
        s.execute("CREATE TABLE IF NOT EXISTS bench_items (id int PRIMARY KEY, v text)")
        s.execute("INSERT INTO bench_items SELECT g, 'item ' || g FROM generate_series(1, 1000) g "
                  "ON CONFLICT DO NOTHING")
        return s.token


def check_replica(cur, what, replica):
    """Exits unless cur's connection is a session on the replica."""
    cur.execute("SELECT pg_is_in_recovery(), inet_server_port()")
    in_recovery, port = cur.fetchone()
    if not in_recovery or str(port) != replica.rsplit(":", 1)[1]:
        sys.exit(f"bench_python: {what} ran on port {port} (in recovery: {in_recovery}), not on {replica}")


def pct(sorted_ns, q):
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000.0


def load():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: bench_python.py DSN [ITERATIONS]   (DSN: a primary and ONE replica)")
    dsn = sys.argv[1]
    iters = max(100, int(sys.argv[2]) if len(sys.argv) > 2 else 10000)

    cluster = walrouter.connect(dsn)
    token = setup(cluster)
    replica_dsn, replica = replica_conninfo(dsn, cluster)
    with cluster.session(token=token) as s:  # poll until the replica has the rows
        while s.query("SELECT count(*) FROM bench_items").node != replica:
            pass

    pg2 = psycopg2.connect(replica_dsn)
    pg2.autocommit = True
    cur2 = pg2.cursor()
    pg2p = psycopg2.connect(replica_dsn)
    pg2p.autocommit = True
    cur2p = pg2p.cursor()
    cur2p.execute(PREPARE_PG)
    pg3 = psycopg.connect(replica_dsn, autocommit=True)
    cur3 = pg3.cursor()
    checks = (("psycopg2_default", cur2), ("psycopg2_prepared", cur2p), ("psycopg3_default", cur3))
    for what, cur in checks:
        check_replica(cur, what, replica)
    session = cluster.session()

    def run_psycopg2(i):
        cur2.execute(QUERY_PG, (i,))
        return cur2.fetchall()

    def run_psycopg2_prepared(i):
        cur2p.execute(EXECUTE_PG, (i,))
        return cur2p.fetchall()

    def run_psycopg3(i):
        cur3.execute(QUERY_PG, (i,))
        return cur3.fetchall()

    def run_walrouter(i):
        return session.query(QUERY, i)

    def run_walrouter_new(i):
        with cluster.session() as s:
            return s.query(QUERY, i)

    variants = {"psycopg2_default": run_psycopg2, "psycopg2_prepared": run_psycopg2_prepared,
                "psycopg3_default": run_psycopg3, "walrouter": run_walrouter, "walrouter_new": run_walrouter_new}
    for f in variants.values():  # warm up: connections, prepared statements
        for i in range(200):
            f(1 + i % 1000)
    names = list(variants)
    lat = {name: [] for name in variants}
    on_replica = {name: 0 for name in variants if name.startswith("walrouter")}
    clock, rng = time.perf_counter_ns, random.Random(int(os.environ.get("WR_BENCH_SEED", "0")) or None)
    load0 = load()
    for k in range(iters):
        i = 1 + k % 1000
        rng.shuffle(names)  # a fresh order for every read
        for name in names:
            f = variants[name]
            t0 = clock()
            rows = f(i)
            lat[name].append(clock() - t0)
            if len(rows) != 1 or rows[0][0] != i:
                sys.exit(f"bench_python: {name}: wrong row for id {i}: {list(rows)}")
            if name in on_replica:
                on_replica[name] += rows.node == replica
    load1 = load()
    for what, cur in checks:
        check_replica(cur, what, replica)

    print(f"{iters} reads per variant on replica {replica}, alternated read by read in random order, "
          f"query: {QUERY}")
    print(f"  Python {sys.version.split()[0]}, psycopg2 {psycopg2.__version__.split()[0]}, "
          f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__}), walrouter {walrouter.__version__}; "
          f"load average before: {load0}  after: {load1}")
    base = statistics.median(lat["psycopg2_prepared"])
    for name in variants:
        v = sorted(lat[name])
        m = statistics.median(v)
        served = on_replica.get(name, iters)  # psycopg: the connection was checked before and after
        print(f"  {name:<18} median {m / 1000:7.1f} us  p90 {pct(v, 0.9):7.1f}  p99 {pct(v, 0.99):7.1f}"
              f"  {m / base:.3f}x psycopg2_prepared  ({served}/{iters} on the replica)")
    session.close()
    for c in (cur2, cur2p, cur3, pg2, pg2p, pg3):
        c.close()

    # Throughput: THREADS threads, the same query, for the same number of reads
    # each. Connections and sessions are opened and warmed up before the clock
    # starts (a barrier); the window ends when the last thread is done.
    per_thread = max(1000, iters // 4)

    def wr_worker(ready, errors):
        try:
            with cluster.session() as s:
                for k in range(20):
                    s.query(QUERY, 1 + k % 1000)
                ready.wait()
                for k in range(per_thread):
                    s.query(QUERY, 1 + k % 1000)
        except walrouter.Error as e:
            errors.append(e)

    def pg2_worker(prepared):
        def work(ready, errors):
            try:
                conn = psycopg2.connect(replica_dsn)
                conn.autocommit = True
                with conn.cursor() as cur:
                    if prepared:
                        cur.execute(PREPARE_PG)
                    sql = EXECUTE_PG if prepared else QUERY_PG
                    for k in range(20):
                        cur.execute(sql, (1 + k % 1000,))
                        cur.fetchall()
                    ready.wait()
                    for k in range(per_thread):
                        cur.execute(sql, (1 + k % 1000,))
                        cur.fetchall()
                conn.close()
            except psycopg2.Error as e:
                errors.append(e)
                ready.abort()
        return work

    for label, worker in (("walrouter, one shared Cluster", wr_worker),
                          ("psycopg2_default, a connection each", pg2_worker(False)),
                          ("psycopg2_prepared, a connection each", pg2_worker(True))):
        errors = []
        ready = threading.Barrier(THREADS + 1)
        threads = [threading.Thread(target=worker, args=(ready, errors)) for _ in range(THREADS)]
        for t in threads:
            t.start()
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            pass
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        dt = time.perf_counter() - t0
        if errors:
            sys.exit(f"bench_python: {label}: {errors[0]}")
        print(f"  {THREADS} threads, {label:<38} {THREADS * per_thread / dt:9.0f} reads/s"
              f"  ({THREADS * per_thread} reads in {dt:.2f} s, load average {load()})")
    served = {n.name: n.served for n in cluster.status()}
    print(f"  walrouter statements served per node: {served}")
    cluster.close()


if __name__ == "__main__":
    main()
