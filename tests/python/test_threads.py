"""One Cluster shared by threads: no errors, no stale reads, reads on the
streaming replica and never on the paused one, and the GIL is released while
a statement waits on the server."""

import collections
import threading

import walrouter

from conftest import poll

THREADS = 8
ROUNDS = 40


def test_eight_threads_share_one_cluster_without_errors_or_stale_reads(dsn, table, lag):
    # A budget no streaming replica needs all of, even on a loaded machine:
    # a read waits for replica 2 rather than moving on to the primary.
    cluster = walrouter.connect(dsn, read_budget_ms=20000)
    names = cluster.nodes
    errors = []
    served = collections.Counter()
    reasons = collections.Counter()
    start = threading.Barrier(THREADS)

    def worker(k):
        token = None
        try:
            start.wait()
            for i in range(ROUNDS):
                # A request: resume from the previous request's token, write, read back.
                with cluster.session(token=token) as s:
                    s.execute(f"INSERT INTO {table} (v) VALUES ($1)", f"t{k}")
                    r = s.query(f"SELECT count(*) FROM {table} WHERE v = $1", f"t{k}")
                    if r.scalar() != i + 1:
                        errors.append(f"thread {k} round {i}: saw {r.scalar()} rows on {r.node}")
                    served[r.node] += 1
                    reasons[(r.node, r.reason)] += 1
                    token = s.token
                with cluster.session(token=token) as s:  # the next request sees it too
                    r = s.query(f"SELECT count(*) FROM {table} WHERE v = $1", f"t{k}")
                    if r.scalar() != i + 1:
                        errors.append(f"thread {k} round {i}: stale read after resuming the token")
                    served[r.node] += 1
                    reasons[(r.node, r.reason)] += 1
        except Exception as e:  # a test thread reports everything it hit
            errors.append(f"thread {k}: {type(e).__name__}: {e}")

    lag.pause(1)  # one replica lagging, one streaming: both paths are taken
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # Replica 1 is paused before every row: never fresh enough. Replica 2
    # streams: with that budget it serves the reads (but for the odd one its
    # replay rate, measured between bursts, says cannot wait: the primary).
    assert served[names[1]] == 0, reasons
    assert served[names[2]] > THREADS * ROUNDS, reasons  # more than half
    assert set(served) <= {names[0], names[2]}, reasons
    with cluster.session() as s:
        assert s.query(f"SELECT count(*) FROM {table}", primary=True).scalar() == THREADS * ROUNDS
    assert all(n.conns_in_use == 0 for n in cluster.status())
    cluster.close()


def test_the_gil_is_released_while_a_statement_waits(cluster):
    """Thread B blocks in a query on a lock that only this thread can release,
    after seeing B wait: that is possible only if B's call let go of the GIL.
    (Were it held, B would fail on its lock_timeout instead.)"""
    key = 727_001
    outcome = []

    def blocked():
        with cluster.session() as b:
            try:
                with b.transaction():
                    b.execute("SET LOCAL lock_timeout = '20s'")
                    b.query("SELECT pg_advisory_xact_lock($1)", key)
                outcome.append("got the lock")
            except walrouter.Error as e:
                outcome.append(e)

    with cluster.session() as holder, cluster.session() as watcher:
        with holder.transaction():
            holder.query("SELECT pg_advisory_xact_lock($1)", key)
            t = threading.Thread(target=blocked)
            t.start()
            poll(lambda: watcher.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                       "AND NOT granted AND objid = $1", key, primary=True).scalar(),
                 "thread B to wait for the lock")
        t.join()
    assert outcome == ["got the lock"]


def test_a_session_used_from_two_threads_serializes(cluster):
    errors = []
    with cluster.session() as s:
        def run():
            try:
                for _ in range(50):
                    assert s.query("SELECT 1").scalar() == 1
            except Exception as e:  # report to the main thread
                errors.append(e)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
