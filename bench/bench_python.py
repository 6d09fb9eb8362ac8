#!/usr/bin/python3
"""bench_python.py — what walrouter costs on a replica read from Python,
measured in one run against psycopg2 and psycopg 3 reading the same row of
the same replica.

    bench_python.py DSN [ITERATIONS]    (DSN: a primary and ONE replica;
                                         bench/run.sh passes one)

Variants, interleaved in blocks of 500 so drift hits all alike; each reports
the median (and p90, p99) of per-read latencies, including the conversion of
the row to Python values, and the ratio of the median to psycopg2's:
  psycopg2         cursor.execute + fetchall, autocommit (client-side binding)
  psycopg3         cursor.execute + fetchall, autocommit (server-side binding,
                   prepared after 5 runs: psycopg's default)
  walrouter        session.query on one session (replica, cached position)
  walrouter_new    a new session per read, as a web request would do
Then throughput: 8 threads sharing one walrouter Cluster (a session each),
and 8 threads with a psycopg2 connection each, for comparison.
"""

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
BLOCK = 500
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


def pct(sorted_ns, q):
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000.0


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: bench_python.py DSN [ITERATIONS]   (DSN: a primary and ONE replica)")
    dsn = sys.argv[1]
    iters = max(BLOCK, int(sys.argv[2]) if len(sys.argv) > 2 else 10000)
    iters -= iters % BLOCK

    cluster = walrouter.connect(dsn)
    token = setup(cluster)
    replica_dsn, replica = replica_conninfo(dsn, cluster)
    with cluster.session(token=token) as s:  # poll until the replica has the rows
        while s.query("SELECT count(*) FROM bench_items").node != replica:
            pass

    pg2 = psycopg2.connect(replica_dsn)
    pg2.autocommit = True
    cur2 = pg2.cursor()
    pg3 = psycopg.connect(replica_dsn, autocommit=True)
    cur3 = pg3.cursor()
    session = cluster.session()

    def run_psycopg2(i):
        cur2.execute(QUERY_PG, (i,))
        return cur2.fetchall()

    def run_psycopg3(i):
        cur3.execute(QUERY_PG, (i,))
        return cur3.fetchall()

    def run_walrouter(i):
        return session.query(QUERY, i)

    def run_walrouter_new(i):
        with cluster.session() as s:
            return s.query(QUERY, i)

    variants = {"psycopg2": run_psycopg2, "psycopg3": run_psycopg3,
                "walrouter": run_walrouter, "walrouter_new": run_walrouter_new}
    for f in variants.values():  # warm up: connections, prepared statements
        for i in range(200):
            f(1 + i % 1000)
    lat = {name: [] for name in variants}
    on_replica = {name: 0 for name in variants if name.startswith("walrouter")}
    clock = time.perf_counter_ns
    for base in range(0, iters, BLOCK):
        for name, f in variants.items():
            out = lat[name]
            for k in range(BLOCK):
                i = 1 + (base + k) % 1000
                t0 = clock()
                rows = f(i)
                out.append(clock() - t0)
                if len(rows) != 1 or rows[0][0] != i:
                    sys.exit(f"bench_python: {name}: wrong row for id {i}: {list(rows)}")
                if name in on_replica:
                    on_replica[name] += rows.node == replica

    print(f"{iters} reads per variant on replica {replica}, query: {QUERY}")
    print(f"  Python {sys.version.split()[0]}, psycopg2 {psycopg2.__version__.split()[0]}, "
          f"psycopg {psycopg.__version__}, walrouter {walrouter.__version__}")
    base = statistics.median(lat["psycopg2"])
    for name, v in lat.items():
        v.sort()
        m = statistics.median(v)
        where = f"  ({on_replica[name]}/{iters} on the replica)" if name in on_replica else ""
        print(f"  {name:<14} median {m / 1000:7.1f} us  p90 {pct(v, 0.9):7.1f}  p99 {pct(v, 0.99):7.1f}"
              f"  {m / base:.3f}x psycopg2{where}")
    session.close()
    cur2.close()
    pg2.close()
    pg3.close()

    # Throughput: THREADS threads, the same query, for the same number of reads each.
    per_thread = max(1000, iters // 4)

    def wr_worker(errors):
        try:
            with cluster.session() as s:
                for k in range(per_thread):
                    s.query(QUERY, 1 + k % 1000)
        except walrouter.Error as e:
            errors.append(e)

    def pg2_worker(errors):
        try:
            conn = psycopg2.connect(replica_dsn)
            conn.autocommit = True
            with conn.cursor() as cur:
                for k in range(per_thread):
                    cur.execute(QUERY_PG, (1 + k % 1000,))
                    cur.fetchall()
            conn.close()
        except psycopg2.Error as e:
            errors.append(e)

    for label, worker in (("walrouter, one shared Cluster", wr_worker),
                          ("psycopg2, a connection per thread", pg2_worker)):
        errors = []
        threads = [threading.Thread(target=worker, args=(errors,)) for _ in range(THREADS)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        dt = time.perf_counter() - t0
        if errors:
            sys.exit(f"bench_python: {label}: {errors[0]}")
        print(f"  {THREADS} threads, {label:<34} {THREADS * per_thread / dt:9.0f} reads/s"
              f"  ({THREADS * per_thread} reads in {dt:.2f} s)")
    served = {n.name: n.served for n in cluster.status()}
    print(f"  walrouter statements served per node: {served}")
    cluster.close()


if __name__ == "__main__":
    main()
