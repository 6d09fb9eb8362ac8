#!/usr/bin/python3
"""workload.py — one read/write workload, run under injected replication lag
through several routing strategies on the same cluster, in the same run.
bench/workload/run.sh starts the cluster and Pgpool-II and calls it.

    workload.py --dsn URI --pgpool URI [--pgbouncer URI] [--seconds S] [--readers N]
                [--writers N] [--phases none,delay5,delay50,delay500,pauses] [--out DIR]
                [--results FILE] [--smoke]

The workload (tables wl_posts, wl_comments, seeded first): writers insert
posts and comments and hand each new post, with a token, to the readers;
readers are users who page the newest posts with their comments, sometimes
write a post and read back their own posts at once, and sometimes open a
post a writer just handed them, with its token. A token is what the strategy
carries from a write to a later read: walrouter's session token, the time of
the write for time pinning, nothing for the others.

Strategies (each reader and writer has its own connections, opened before the
measured window):
  walrouter   one walrouter Cluster per window, default options except
              pool_size = pool_max = the number of users (the others hold a
              connection per user and node); a session per request, resumed
              from the user's token (or from the writer's token for a
              handed-over post)
  walrouter_b2s  the same with read_budget_ms = 2000 (default 200): a read
              waits up to 2 s for a fresh replica before the primary
  walrouter_pgbouncer  walrouter (default options) through one PgBouncer in
              front of each node (--pgbouncer lists the three PgBouncers);
              with PgBouncer in transaction mode, no_stmt_cache = 1. walrouter
              probes each node through its PgBouncer too.
  pin2s       Rails style: the primary for 2 s after the user's write (or the
              handed-over write), else a random replica
  naive       every read to a random replica, writes to the primary
  primary     everything on the primary
  pgpool      everything through Pgpool-II (load balancing, delay_threshold)

Lag phases, each applied to both replicas while every strategy runs in turn
(the order rotates per phase): none; recovery_min_apply_delay 5, 50, 500 ms;
pauses (pg_wal_replay_pause / resume cycles of random lengths, 0.1-1 s).

Figures per strategy and phase: share of reads served by a replica (every read
returns inet_server_port(), so the node is measured, never assumed), stale
reads (a read of the user's own acknowledged write, or of a handed-over post,
that misses it), monotonic violations (a user's page of newest posts older
than one they saw before), read latency p50/p99 and throughput. Written as
results.csv, results.json, results.md and PNG plots in --out.
"""

import argparse
import collections
import csv
import json
import os
import random
import shutil
import sys
import threading
import time
from urllib.parse import urlsplit

import psycopg2

import walrouter

PAGE = ("SELECT p.id, p.title, c.body, inet_server_port() FROM "
        "(SELECT id, title FROM wl_posts ORDER BY id DESC LIMIT 20) p "
        "LEFT JOIN wl_comments c ON c.post_id = p.id")
MINE = "SELECT id, inet_server_port() FROM wl_posts WHERE author = %s ORDER BY id DESC LIMIT 5"
POST = ("SELECT p.id, c.id, inet_server_port() FROM wl_posts p "
        "LEFT JOIN wl_comments c ON c.post_id = p.id WHERE p.id = %s")
INSERT_POST = "INSERT INTO wl_posts (author, title) VALUES (%s, %s) RETURNING id"
INSERT_COMMENT = "INSERT INTO wl_comments (post_id, author, body) VALUES (%s, %s, %s) RETURNING id"
PIN_SECONDS = 2.0
PHASES = {"none": ("delay", 0), "delay5": ("delay", 5), "delay50": ("delay", 50),
          "delay500": ("delay", 500), "pauses": ("pauses", 0)}
STRATEGIES = ["walrouter", "walrouter_b2s", "walrouter_pgbouncer", "pin2s", "naive", "primary", "pgpool"]
# Options of each walrouter strategy's Cluster, besides pool_size = the number
# of users (every other strategy holds a connection per user and node; with
# the default pool_size of 8 idle connections, 22 users keep closing and
# opening connections) and --walrouter-option: the defaults, and a read budget
# of 2 s instead of 200 ms.
WALROUTER_OPTIONS = {"walrouter": {}, "walrouter_b2s": {"read_budget_ms": "2000"}, "walrouter_pgbouncer": {}}


def dollar(sql):
    """%s placeholders as $1, $2, ... (walrouter's form)."""
    parts = sql.split("%s")
    return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))


def node_uri(dsn, port):
    u = urlsplit(dsn)
    cred = u.netloc.rsplit("@", 1)[0]
    return f"{u.scheme}://{cred}@127.0.0.1:{port}{u.path}"


def ports_of(dsn):
    return [int(h.rsplit(":", 1)[1]) for h in urlsplit(dsn).netloc.rsplit("@", 1)[1].split(",")]


def pg_connect(uri):
    c = psycopg2.connect(uri, connect_timeout=10)
    c.autocommit = True
    return c


def pg_run(conn, sql, params):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


# ---- clients: one per user (thread), per strategy --------------------------

class WalrouterClient:
    def __init__(self, cluster, server_port):
        self.cluster, self.token, self.reasons = cluster, None, collections.Counter()
        self.server_port = server_port  # the node's port in the DSN -> the server's (PgBouncer's node)

    def read(self, sql, params, other=None):
        with self.cluster.session(token=other or self.token) as s:
            r = s.query(dollar(sql), *params)
            if other is None:
                self.token = s.token
        self.reasons[r.reason] += 1
        rows = r.rows
        if rows and r.node is not None and self.server_port[int(r.node.rsplit(":", 1)[1])] != rows[0][-1]:
            raise RuntimeError(f"walrouter says {r.node} served a read that ran on port {rows[0][-1]}")
        return rows

    def write(self, sql, params):
        with self.cluster.session(token=self.token) as s:
            rows = s.write(dollar(sql), *params).rows
            self.token = s.token
        return rows, self.token

    def close(self):
        pass


class DirectClient:
    """pin2s, naive and primary: psycopg2 connections to every node."""

    def __init__(self, kind, dsn, ports, rng):
        self.kind, self.rng, self.last_write = kind, rng, float("-inf")
        self.primary = pg_connect(node_uri(dsn, ports[0]))
        self.replicas = [] if kind == "primary" else [pg_connect(node_uri(dsn, p)) for p in ports[1:]]

    def read(self, sql, params, other=None):
        conn = self.primary
        if self.kind != "primary":
            since = max(self.last_write, other if self.kind == "pin2s" and other else float("-inf"))
            if self.kind == "naive" or time.monotonic() - since >= PIN_SECONDS:
                conn = self.rng.choice(self.replicas)
        return pg_run(conn, sql, params)

    def write(self, sql, params):
        rows = pg_run(self.primary, sql, params)
        self.last_write = time.monotonic()
        return rows, self.last_write

    def close(self):
        for c in [self.primary] + self.replicas:
            c.close()


class PgpoolClient:
    def __init__(self, uri):
        self.conn = pg_connect(uri)

    def read(self, sql, params, other=None):
        return pg_run(self.conn, sql, params)

    def write(self, sql, params):
        return pg_run(self.conn, sql, params), None

    def close(self):
        self.conn.close()


# ---- one measured window -----------------------------------------------------

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.read_ns, self.write_ns = [], []
        self.on_replica = self.own_checks = self.stale_own = 0
        self.other_checks = self.stale_other = self.mono = self.errors = 0
        self.first_error = None
        self.reasons = collections.Counter()  # walrouter: reads by the reason of their route
        self.nodes = ""  # walrouter: the nodes' states at the end of the window

    def merge(self, o):
        with self.lock:
            self.reasons.update(o.reasons)
            self.read_ns += o.read_ns
            self.write_ns += o.write_ns
            for k in ("on_replica", "own_checks", "stale_own", "other_checks", "stale_other", "mono", "errors"):
                setattr(self, k, getattr(self, k) + getattr(o, k))
            self.first_error = self.first_error or o.first_error


class Shared:
    def __init__(self):
        self.lock = threading.Lock()
        self.handoffs = []  # (post id, token) of acknowledged posts, newest last

    def put(self, item):
        with self.lock:
            self.handoffs.append(item)
            del self.handoffs[:-50]

    def pick(self, rng):
        with self.lock:
            return rng.choice(self.handoffs) if self.handoffs else None


def timed(st, replica_ports, fn, *a):
    t0 = time.perf_counter_ns()
    rows = fn(*a)
    st.read_ns.append(time.perf_counter_ns() - t0)
    st.on_replica += bool(rows) and rows[0][-1] in replica_ports
    return rows


def warm_up(client, st, go):
    """Opens connections and prepares statements before the measured window:
    3 successful reads, retried for up to 30 s (a loaded machine may time out
    the first connections); only a warm-up that never succeeds counts as an
    error."""
    done, deadline, last = 0, time.monotonic() + 30, None
    while done < 3 and time.monotonic() < deadline:
        try:
            client.read(PAGE, ())
            done += 1
        except Exception as e:  # noqa: BLE001
            last = e
            time.sleep(0.05)
    if done < 3:
        st.errors += 1
        st.first_error = f"warm-up: {type(last).__name__}: {last}"
    go.wait()


def reader(client, user, rng, shared, replica_ports, go, stop, out):
    st, seen_max = Stats(), 0
    warm_up(client, st, go)
    while not stop.is_set():
        try:
            x = rng.random()
            if x < 0.1:  # the user writes a post and reads their own posts back
                t0 = time.perf_counter_ns()
                rows, _ = client.write(INSERT_POST, (user, f"post by user {user}"))
                st.write_ns.append(time.perf_counter_ns() - t0)
                mine = timed(st, replica_ports, client.read, MINE, (user,))
                st.own_checks += 1
                st.stale_own += rows[0][0] not in [r[0] for r in mine]
                if not mine:  # no row: the node is not known; count it as on a replica
                    st.on_replica += 1
            elif x < 0.4 and (h := shared.pick(rng)):  # a post handed over with its token
                rows = timed(st, replica_ports, client.read, POST, (h[0],), h[1])
                st.other_checks += 1
                if not rows:
                    st.stale_other += 1
                    st.on_replica += 1
            else:  # the newest posts with their comments
                rows = timed(st, replica_ports, client.read, PAGE, ())
                top = max(r[0] for r in rows)
                st.mono += top < seen_max
                seen_max = max(seen_max, top)
        except Exception as e:  # noqa: BLE001 - counted and reported
            st.errors += 1
            st.first_error = st.first_error or f"{type(e).__name__}: {e}"
            time.sleep(0.01)
    out.merge(st)


def writer(client, user, rng, shared, interval, go, stop, out):
    st = Stats()
    warm_up(client, st, go)
    while not stop.is_set():
        try:
            t0 = time.perf_counter_ns()
            rows, token = client.write(INSERT_POST, (user, f"news {rng.random():.6f}"))
            client.write(INSERT_COMMENT, (rows[0][0], user, "first"))
            shared.put((rows[0][0], token))
            st.write_ns.append(time.perf_counter_ns() - t0)
        except Exception as e:  # noqa: BLE001
            st.errors += 1
            st.first_error = st.first_error or f"{type(e).__name__}: {e}"
        stop.wait(interval)
    out.merge(st)


def open_cluster(name, args, ports):
    """The walrouter Cluster of one strategy, opened for one window (so its
    connections never outlive it) and checked to see the primary first."""
    dsn, server_port = args.dsn, {p: p for p in ports}
    if name == "walrouter_pgbouncer":
        dsn = args.pgbouncer
        server_port = dict(zip(ports_of(dsn), ports))
    cluster = walrouter.connect(dsn, **args.walrouter_options[name])
    first = ports_of(dsn)[0]
    if cluster.primary != f"127.0.0.1:{first}":
        cluster.close()
        sys.exit(f"workload: {name}: the first node of the DSN must be the primary (walrouter found "
                 f"{cluster.primary})")
    return cluster, server_port


def run_strategy(name, args, ports, seconds):
    rng = random.Random(STRATEGIES.index(name) if name in STRATEGIES else 99)
    cluster = server_port = None
    if name in WALROUTER_OPTIONS:
        cluster, server_port = open_cluster(name, args, ports)

    def make(i):
        r = random.Random(rng.random())
        if cluster is not None:
            return WalrouterClient(cluster, server_port), r
        if name == "pgpool":
            return PgpoolClient(args.pgpool), r
        return DirectClient(name, args.dsn, ports, r), r

    nusers = args.readers + args.writers
    clients = [make(i) for i in range(nusers)]  # connections opened outside the window
    go, stop, stats, shared = threading.Barrier(nusers + 1), threading.Event(), Stats(), Shared()
    threads = []
    for i, (c, r) in enumerate(clients):
        user = 1000 + i
        if i < args.writers:
            t = threading.Thread(target=writer, args=(c, user, r, shared, args.write_interval, go, stop, stats))
        else:
            t = threading.Thread(target=reader, args=(c, user, r, shared, set(ports[1:]), go, stop, stats))
        threads.append(t)
        t.start()
    go.wait()  # every user has warmed up
    load0 = os.getloadavg()
    t0 = time.monotonic()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    dt = time.monotonic() - t0
    load1 = os.getloadavg()
    for c, _ in clients:
        stats.reasons.update(getattr(c, "reasons", {}))
        c.close()
    if cluster is not None:  # how walrouter saw the nodes at the end of the window
        stats.nodes = " ".join(f"{n.name.rsplit(':', 1)[1]}={n.state}" for n in cluster.status())
        cluster.close()
    return stats, dt, load0, load1


# ---- lag injection ------------------------------------------------------------

class Lag:
    def __init__(self, dsn, ports):
        self.uris = [node_uri(dsn, p) for p in ports[1:]]
        self.conns = [pg_connect(u) for u in self.uris]
        self.stop, self.threads = threading.Event(), []

    def set_delay(self, ms):
        for c in self.conns:
            with c.cursor() as cur:
                cur.execute("SELECT pg_wal_replay_resume()")
                cur.execute(f"ALTER SYSTEM SET recovery_min_apply_delay = '{int(ms)}ms'")
                cur.execute("SELECT pg_reload_conf()")
        want = f"{int(ms)}ms" if ms else "0"
        for c in self.conns:  # poll until the setting is in force
            while pg_run(c, "SHOW recovery_min_apply_delay", ())[0][0] != want:
                time.sleep(0.02)

    def start_pauses(self, seed):
        self.stop.clear()

        def cycle(c, rng):
            while not self.stop.is_set():
                pg_run(c, "SELECT pg_wal_replay_pause()", ())
                if self.stop.wait(rng.uniform(0.1, 1.0)):
                    break
                pg_run(c, "SELECT pg_wal_replay_resume()", ())
                self.stop.wait(rng.uniform(0.1, 1.0))
            pg_run(c, "SELECT pg_wal_replay_resume()", ())

        # Their own connections: a cycle never shares one with set_delay.
        self.cycle_conns = [pg_connect(u) for u in self.uris]
        self.threads = [threading.Thread(target=cycle, args=(c, random.Random(seed + i)))
                        for i, c in enumerate(self.cycle_conns)]
        for t in self.threads:
            t.start()

    def stop_pauses(self):
        self.stop.set()
        for t in self.threads:
            t.join()
        for c in getattr(self, "cycle_conns", []):
            c.close()
        self.threads, self.cycle_conns = [], []

    def close(self):
        self.stop_pauses()
        self.set_delay(0)
        for c in self.conns:
            c.close()


# ---- setup, reporting ---------------------------------------------------------

def seed(dsn, ports):
    prim = pg_connect(node_uri(dsn, ports[0]))
    with prim.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS wl_comments, wl_posts")
        cur.execute("CREATE TABLE wl_posts (id bigserial PRIMARY KEY, author int NOT NULL, title text NOT NULL, "
                    "created timestamptz NOT NULL DEFAULT now())")
        cur.execute("CREATE INDEX ON wl_posts (author, id)")
        cur.execute("CREATE TABLE wl_comments (id bigserial PRIMARY KEY, post_id bigint NOT NULL "
                    "REFERENCES wl_posts, author int NOT NULL, body text NOT NULL)")
        cur.execute("CREATE INDEX ON wl_comments (post_id)")
        cur.execute("INSERT INTO wl_posts (author, title) SELECT g % 50, 'seed post ' || g "
                    "FROM generate_series(1, 2000) g")
        cur.execute("INSERT INTO wl_comments (post_id, author, body) SELECT 1 + g % 2000, g % 50, 'seed comment' "
                    "FROM generate_series(1, 8000) g")
        cur.execute("ANALYZE wl_posts, wl_comments")
        cur.execute("SELECT pg_current_wal_lsn()")
        lsn = cur.fetchone()[0]
    prim.close()
    for p in ports[1:]:  # poll until both replicas have the seed
        c = pg_connect(node_uri(dsn, p))
        while not pg_run(c, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))[0][0]:
            time.sleep(0.05)
        c.close()


def pct(v, q):
    return v[min(len(v) - 1, int(q * len(v)))] / 1e6 if v else float("nan")


def row_of(phase, name, st, dt, load0, load1):
    reads = len(st.read_ns)
    st.read_ns.sort()
    return {
        "phase": phase, "strategy": name, "seconds": round(dt, 2), "reads": reads, "writes": len(st.write_ns),
        "replica_share": round(st.on_replica / reads, 4) if reads else 0.0,
        "own_checks": st.own_checks, "stale_own": st.stale_own,
        "other_checks": st.other_checks, "stale_other": st.stale_other,
        "stale_rate": round((st.stale_own + st.stale_other) / max(1, st.own_checks + st.other_checks), 4),
        "monotonic_violations": st.mono, "errors": st.errors, "first_error": st.first_error,
        "reads_per_s": round(reads / dt, 1), "writes_per_s": round(len(st.write_ns) / dt, 1),
        "read_p50_ms": round(pct(st.read_ns, 0.5), 3), "read_p99_ms": round(pct(st.read_ns, 0.99), 3),
        "load_before": " ".join(f"{x:.2f}" for x in load0), "load_after": " ".join(f"{x:.2f}" for x in load1),
        "routes": " ".join(f"{k}={v}" for k, v in sorted(st.reasons.items())),
        "node_states": st.nodes,
    }


def write_outputs(out, meta, rows, cdfs):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": rows}, f, indent=1)
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    cols = [("phase", "lag"), ("strategy", "strategy"), ("replica_share", "on replicas"),
            ("stale_own", "stale own"), ("stale_other", "stale handed-over"), ("stale_rate", "stale rate"),
            ("monotonic_violations", "monotonic viol."), ("reads_per_s", "reads/s"), ("writes_per_s", "writes/s"),
            ("read_p50_ms", "p50 ms"), ("read_p99_ms", "p99 ms"), ("errors", "errors"),
            ("load_before", "load before")]
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(f"{meta['started']}, {meta['cpus']} CPUs, {meta['readers']} readers + {meta['writers']} writers, "
                f"{meta['seconds']} s per strategy and phase\n\n")
        f.write("| " + " | ".join(c[1] for c in cols) + " |\n|" + "---|" * len(cols) + "\n")
        for r in rows:
            f.write("| " + " | ".join(f"{r[k]:.0%}" if k == "replica_share" else
                                      f"{r[k]:.2%}" if k == "stale_rate" else str(r[k]) for k, _ in cols) + " |\n")
        f.write("\nwalrouter reads by route (including the warm-up):\n\n")
        for r in rows:
            if r["routes"]:
                f.write(f"- {r['phase']}, {r['strategy']}: {r['routes']}; nodes at the end: {r['node_states']}\n")
    if cdfs is not None:
        plot(out, meta, rows, cdfs)


PLOTS = ("summary.png", "replica_share.png", "stale.png", "latency_cdf.png")


def write_results(path, out, meta):
    """RESULTS.md: the run's table (results.md) under a header naming the
    date, the machine's load and the command; the plots copied next to it."""
    with open(os.path.join(out, "results.md")) as f:
        table = f.read()
    there = os.path.dirname(os.path.abspath(path))
    plots = [p for p in PLOTS if os.path.exists(os.path.join(out, p))]
    for p in plots:
        shutil.copyfile(os.path.join(out, p), os.path.join(there, p))
    opts = "; ".join(f"{n}: " + ", ".join(f"{k}={v}" for k, v in o.items())
                     for n, o in meta["walrouter_options"].items())
    with open(path, "w") as f:
        f.write("# Workload comparison: the latest full run\n\n"
                "Written by `bench/workload/run.sh` (method and reading: [docs/bench.md](../../docs/bench.md)).\n\n"
                f"- **When:** {meta['started']} to {meta['finished']} (UTC)\n"
                f"- **Command:** `{meta['command']}`\n"
                f"- **Machine:** {meta['cpus']} CPUs, load average (1, 5, 15 min) {meta['load_start']} at the "
                f"start and {meta['load_end']} at the end; each row gives the load before its window\n"
                f"- **Workload:** {meta['readers']} readers + {meta['writers']} writers, {meta['seconds']} s "
                f"per strategy and lag phase, strategies in turn (the order rotates per phase)\n"
                f"- **walrouter options:** {opts}"
                + (f"; PgBouncer pool_mode = {meta['pgbouncer_mode']}" if meta.get("pgbouncer_mode") else "")
                + f"\n- **walrouter:** {meta['walrouter']}\n\n")
        f.write(table)
        if plots:
            f.write("\n## Plots\n\n")
            titles = {"summary.png": "summary", "replica_share.png": "reads served by a replica, per lag",
                      "stale.png": "stale reads, per lag", "latency_cdf.png": "read latency CDF (all phases)"}
            for p in plots:
                f.write(f"![{titles[p]}]({p})\n\n")


def plot(out, meta, rows, cdfs):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("workload: python3-matplotlib missing, no plots", file=sys.stderr)
        return
    phases = list(dict.fromkeys(r["phase"] for r in rows))
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    get = {(r["phase"], r["strategy"]): r for r in rows}
    width = 0.8 / len(strategies)

    def bars(ax, key, title, scale=1.0, fmt=None):
        for k, s in enumerate(strategies):
            ys = [get[(p, s)][key] * scale if (p, s) in get else 0 for p in phases]
            ax.bar([i + k * width for i in range(len(phases))], ys, width, label=s)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(phases))], phases)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    bars(axes[0], "replica_share", "reads served by a replica (%)", 100)
    bars(axes[1], "stale_rate", "stale reads (% of read-your-writes checks)", 100)
    bars(axes[2], "read_p99_ms", "read latency p99 (ms)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(strategies), 7), fontsize=8)
    fig.suptitle(f"walrouter workload: {meta['readers']} readers + {meta['writers']} writers, "
                 f"{meta['seconds']} s per cell, {meta['cpus']} CPUs, load {meta['load_start']}", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(os.path.join(out, "summary.png"), dpi=70)
    plt.close(fig)
    for key, title, scale, fname in (("replica_share", "reads served by a replica (%)", 100, "replica_share.png"),
                                     ("stale_rate", "stale reads (%)", 100, "stale.png")):
        fig, ax = plt.subplots(figsize=(8, 4))
        bars(ax, key, title, scale)
        ax.set_xlabel("injected lag")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, fname), dpi=80)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 4))
    for s in strategies:
        v = sorted(cdfs.get(s, []))
        if v:
            ax.plot([x / 1e6 for x in v], [(i + 1) / len(v) for i in range(len(v))], label=s)
    ax.set_xscale("log")
    ax.set_xlabel("read latency (ms), all phases")
    ax.set_ylabel("fraction of reads")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "latency_cdf.png"), dpi=80)
    plt.close(fig)


def smoke_checks(rows):
    bad = []
    for r in rows:
        s = r["strategy"]
        if r["reads"] == 0 or r["writes"] == 0:
            bad.append(f"{s}: no reads or no writes")
        # A loaded machine may time out an operation now and then (every
        # round trip has a deadline): only more than 5% fail the check.
        if r["errors"] > max(2, 0.05 * (r["reads"] + r["writes"])):
            bad.append(f"{s}: {r['errors']} errors, first: {r['first_error']}")
        if s.startswith("walrouter") and (r["stale_own"] or r["stale_other"] or r["monotonic_violations"]):
            bad.append(f"{s}: stale or non-monotonic reads: {r}")
        if s == "naive" and r["replica_share"] != 1.0:
            bad.append(f"naive: {r['replica_share']} of reads on replicas, expected all")
        if s == "primary" and r["replica_share"] != 0.0:
            bad.append(f"primary: {r['replica_share']} of reads on replicas, expected none")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dsn", required=True, help="the cluster's multi-host URI (primary first)")
    ap.add_argument("--pgpool", required=True, help="a URI to Pgpool-II in front of the same cluster")
    ap.add_argument("--pgbouncer", help="a multi-host URI listing one PgBouncer per node (primary first); "
                    "without it, no walrouter_pgbouncer strategy")
    ap.add_argument("--pgbouncer-mode", default="transaction", choices=("transaction", "session"),
                    help="the PgBouncers' pool_mode (transaction: walrouter runs with no_stmt_cache = 1)")
    ap.add_argument("--seconds", type=float, default=6.0, help="measured window per strategy and phase")
    ap.add_argument("--readers", type=int, default=100)
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--write-interval", type=float, default=0.01, help="a writer's pause between posts (s)")
    ap.add_argument("--phases", default="none,delay5,delay50,delay500,pauses")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"))
    ap.add_argument("--results", help="also write the table (with the date, load and --command) to this "
                    "Markdown file, and copy the plots next to it")
    ap.add_argument("--command", default=" ".join(sys.argv), help="the command line to record in --results")
    ap.add_argument("--walrouter-option", action="append", default=[], metavar="NAME=VALUE",
                    help="an option for walrouter.connect (e.g. read_budget_ms=1000); defaults otherwise")
    ap.add_argument("--no-plots", action="store_true", help="no PNG plots (the tables only)")
    ap.add_argument("--smoke", action="store_true",
                    help="a short run without plots whose figures are checked (exit 1 if wrong)")
    args = ap.parse_args()
    if args.smoke:
        args.seconds, args.readers, args.phases = min(args.seconds, 1.0), min(args.readers, 4), "delay50"
        args.no_plots, args.results = True, None
    phases, strategies = args.phases.split(","), args.strategies.split(",")
    if not args.pgbouncer and "walrouter_pgbouncer" in strategies:
        strategies.remove("walrouter_pgbouncer")
    for s in strategies:
        if s not in STRATEGIES:
            sys.exit(f"workload: unknown strategy {s} (known: {', '.join(STRATEGIES)})")
    for p in phases:
        if p not in PHASES:
            sys.exit(f"workload: unknown phase {p} (known: {', '.join(PHASES)})")
    ports = ports_of(args.dsn)
    if len(ports) != 3:
        sys.exit("workload: --dsn must name the primary and two replicas")
    if args.pgbouncer and len(ports_of(args.pgbouncer)) != 3:
        sys.exit("workload: --pgbouncer must name the three PgBouncers (primary's first)")
    seed(args.dsn, ports)
    # Every walrouter strategy: as many connections per node as there are
    # users, idle or in use (the other strategies hold one per user and node).
    users = str(args.readers + args.writers)
    wr_opts = {"pool_size": users, "pool_max": users}
    wr_opts.update(o.split("=", 1) for o in args.walrouter_option)
    args.walrouter_options = {n: {**o, **wr_opts} for n, o in WALROUTER_OPTIONS.items()}
    if args.pgbouncer_mode == "transaction":  # no named statements through transaction pooling
        args.walrouter_options["walrouter_pgbouncer"]["no_stmt_cache"] = "1"
    lag = Lag(args.dsn, ports)
    meta = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
            "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg()), "readers": args.readers,
            "writers": args.writers, "seconds": args.seconds, "phases": phases, "strategies": strategies,
            "pin_seconds": PIN_SECONDS, "walrouter": walrouter.__version__,
            "walrouter_options": {n: o for n, o in args.walrouter_options.items() if n in strategies},
            "pgbouncer_mode": args.pgbouncer_mode if "walrouter_pgbouncer" in strategies else None,
            "command": args.command}
    rows, cdfs = [], {}
    try:
        for k, phase in enumerate(phases):
            kind, ms = PHASES[phase]
            lag.set_delay(ms)
            if kind == "pauses":
                lag.start_pauses(k)
            order = strategies[k % len(strategies):] + strategies[:k % len(strategies)]
            for name in order:
                st, dt, l0, l1 = run_strategy(name, args, ports, args.seconds)
                cdfs.setdefault(name, []).extend(st.read_ns)
                r = row_of(phase, name, st, dt, l0, l1)
                rows.append(r)
                print(f"{phase:>8} {name:<19} replicas {r['replica_share']:6.1%}  stale {r['stale_own']:4d} own "
                      f"/{r['own_checks']:5d}, {r['stale_other']:4d} handed-over /{r['other_checks']:5d}  "
                      f"monotonic {r['monotonic_violations']:3d}  {r['reads_per_s']:7.0f} reads/s "
                      f"{r['writes_per_s']:5.0f} writes/s  p50 {r['read_p50_ms']:6.2f} ms  "
                      f"p99 {r['read_p99_ms']:7.2f} ms  errors {r['errors']}  load {r['load_before']}"
                      + (f"\n{'':18}routes: {r['routes']}; nodes at the end: {r['node_states']}"
                         if r["routes"] else ""), flush=True)
            if kind == "pauses":
                lag.stop_pauses()
    finally:
        lag.close()
    meta["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rows.sort(key=lambda r: (phases.index(r["phase"]), strategies.index(r["strategy"])))
    write_outputs(args.out, meta, rows, None if args.no_plots else cdfs)
    print(f"workload: results in {args.out} (results.md, results.csv, results.json, *.png)")
    if args.results:
        write_results(args.results, args.out, meta)
        print(f"workload: table in {args.results}")
    if args.smoke:
        bad = smoke_checks(rows)
        for b in bad:
            print("workload smoke: FAIL:", b, file=sys.stderr)
        sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
