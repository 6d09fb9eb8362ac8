"""The public classes own the C handles: sessions return their connections,
closing (or collecting) a cluster closes its pool, nothing leaks."""

import gc
import os
import weakref

import walrouter

from conftest import poll, walrouter_backends


def test_closed_and_collected_sessions_return_their_connections(dsn, table):
    baseline = walrouter_backends()
    c = walrouter.connect(dsn, pool_size=4)
    kept = []
    for i in range(20):
        s = c.session()
        s.execute(f"INSERT INTO {table} (v) VALUES ($1)", str(i))
        s.query(f"SELECT count(*) FROM {table}")
        if i % 2:
            s.close()
        else:
            kept.append(weakref.ref(s))
        del s
    gc.collect()
    assert all(ref() is None for ref in kept)
    status = c.status()
    assert all(n.conns_in_use == 0 for n in status)
    assert all(n.conns_idle <= 4 for n in status)
    assert walrouter_backends() > baseline  # the pool is open...
    c.close()
    poll(lambda: walrouter_backends() <= baseline, "the cluster's connections to close")  # ...and closed


def test_a_collected_cluster_closes_its_pool(dsn):
    baseline = walrouter_backends()
    c = walrouter.connect(dsn)
    with c.session() as s:
        s.query("SELECT 1")
        s.query("SELECT 1", primary=True)
    assert walrouter_backends() > baseline
    ref = weakref.ref(c)
    del c, s
    gc.collect()
    assert ref() is None
    poll(lambda: walrouter_backends() <= baseline, "the collected cluster's connections to close")


def test_a_session_keeps_its_cluster_alive(dsn):
    c = walrouter.connect(dsn)
    ref = weakref.ref(c)
    s = c.session()
    del c
    gc.collect()
    assert ref() is not None
    assert s.query("SELECT 1").scalar() == 1
    s.close()
    s.cluster.close()


def test_closing_the_cluster_closes_its_sessions_and_their_transactions(dsn, table):
    baseline = walrouter_backends()
    c = walrouter.connect(dsn)
    s = c.session()
    s.begin()
    s.execute(f"INSERT INTO {table} (v) VALUES ('rolled back')")
    c.close()
    assert s.closed and c.closed
    poll(lambda: walrouter_backends() <= baseline, "the cluster's connections to close")
    with walrouter.connect(dsn) as c2, c2.session() as t:
        assert t.query(f"SELECT count(*) FROM {table}", primary=True).scalar() == 0


def test_a_collected_session_in_a_transaction_rolls_back_and_frees_its_connection(cluster, table):
    s = cluster.session()
    s.begin()
    s.execute(f"INSERT INTO {table} (v) VALUES ('gone')")
    del s
    gc.collect()
    assert all(n.conns_in_use == 0 for n in cluster.status())
    with cluster.session() as t:
        assert t.query(f"SELECT count(*) FROM {table}", primary=True).scalar() == 0


def test_results_hold_no_handle(cluster):
    with cluster.session() as s:
        r = s.query("SELECT 'still here' AS v")
    cluster.close()
    assert r.rows == [("still here",)] and r.dicts() == [{"v": "still here"}]


def test_a_forked_child_leaves_the_parents_connections_alone(dsn):
    """The child's inherited cluster raises a clear error instead of using
    (or, when collected, closing) the parent's connections; the child opens
    its own. The parent's pooled connection to the primary is still the same
    backend afterwards, so the child sent it nothing."""
    with walrouter.connect(dsn, pool_size=1) as c, c.session() as s:
        pid = s.query("SELECT pg_backend_pid()", primary=True).scalar()
        child = os.fork()
        if child == 0:  # the child reports through its exit status only
            code = 1
            try:
                for use in (c.session, lambda: s.query("SELECT 1"), c.status):
                    try:
                        use()
                        code = 2
                    except walrouter.InterfaceError as e:
                        if "another process" not in str(e):
                            code = 3
                if code == 1:
                    s.close()
                    c.close()
                    with walrouter.connect(dsn) as own, own.session() as mine:
                        code = 0 if mine.query("SELECT 1").scalar() == 1 else 4
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        gc.collect()
        assert s.query("SELECT pg_backend_pid()", primary=True).scalar() == pid
        assert s.query("SELECT 1").scalar() == 1
