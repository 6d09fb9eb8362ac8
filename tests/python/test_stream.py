"""session.stream: a read in chunks through a cursor, in one read-only
transaction; an iterator of row tuples and a context manager; memory stays
flat."""

import gc
import re

import pytest

import walrouter
from walrouter import _core

from conftest import PRIMARY, REPLICAS


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        return int(re.search(r"VmRSS:\s*(\d+)", f.read()).group(1))


def test_iterates_every_row_in_order_with_python_types_then_frees_the_session(cluster):
    with cluster.session() as s:
        rows = list(s.stream("SELECT g, 'v' || g, g % 2 = 0 FROM generate_series(1, 2500) g WHERE g > $1 ORDER BY g", 0))
        assert len(rows) == 2500
        assert rows[0] == (1, "v1", False) and rows[-1] == (2500, "v2500", True)
        assert not s.in_transaction
        assert s.query("SELECT 1").scalar() == 1


def test_is_a_context_manager_with_metadata_from_one_replica(cluster, names, lag):
    lag.wait_replay(*REPLICAS)
    with cluster.session() as s:
        with s.stream("SELECT g AS n, 'x' AS v FROM generate_series(1, 10) g", chunk=3) as st:
            assert st.columns == ("n", "v")
            assert st.node in (names[1], names[2])
            assert next(st) == (1, "x")
            assert [r[0] for r in st] == list(range(2, 11))
            assert st.closed  # after the last row
        assert not s.in_transaction
        with s.stream("SELECT 1", primary=True) as st:
            assert st.node == names[PRIMARY]
            assert list(st) == [(1,)]


def test_sees_the_sessions_own_write_while_every_replica_is_paused(cluster, table, lag):
    lag.pause(*REPLICAS)
    with cluster.session() as s:
        s.execute(f"INSERT INTO {table} (v) VALUES ('streamed')")
        assert [r[0] for r in s.stream(f"SELECT v FROM {table}")] == ["streamed"]


def test_break_garbage_collection_and_close_end_the_streams_transaction(cluster):
    with cluster.session() as s:
        for row in s.stream("SELECT g FROM generate_series(1, 100) g", chunk=10):
            if row[0] == 15:
                break
        assert not s.in_transaction  # the stream was collected at the end of the loop

        st = s.stream("SELECT g FROM generate_series(1, 100) g")
        assert next(st) == (1,)
        assert s.in_transaction
        del st
        gc.collect()
        assert not s.in_transaction

        st = s.stream("SELECT g FROM generate_series(1, 100) g")
        st.close()
        st.close()  # idempotent
        assert list(st) == []
        assert not s.in_transaction
        assert "closed" in repr(st)


def test_a_stream_collected_while_its_session_is_busy_is_closed_at_the_next_call(cluster):
    """A garbage collection can run in the middle of a call, on the thread
    that holds the session (a signal handler runs there): closing the stream
    must not wait for the session then, so it is closed at the next call."""
    with cluster.session() as s:
        st = s.stream("SELECT g FROM generate_series(1, 100) g")
        with s._h.lock:  # as during a call
            del st
            gc.collect()
        assert _core.wr_session_in_transaction(s._h.ptr)  # not closed yet: the session was busy
        assert s.query("SELECT 2").scalar() == 2  # closed first, then the read runs outside it
        assert not _core.wr_session_in_transaction(s._h.ptr)


def test_an_empty_result_gives_no_rows(cluster):
    with cluster.session() as s:
        st = s.stream("SELECT 1 AS x WHERE false")
        assert list(st) == [] and st.closed and st.columns == ()
        assert not s.in_transaction


def test_errors_are_raised_and_the_session_goes_on(cluster):
    with cluster.session() as s:
        with pytest.raises(walrouter.ProgrammingError) as e:
            s.stream("SELECT * FROM wr_no_such_table")
        assert e.value.sqlstate == "42P01"
        assert not s.in_transaction

        got = []
        with pytest.raises(walrouter.DataError) as e:
            for row in s.stream("SELECT 1 / (g - 25) FROM generate_series(1, 100) g", chunk=10):
                got.append(row)
        assert e.value.sqlstate == "22012"
        assert len(got) == 20
        assert not s.in_transaction

        with pytest.raises(walrouter.ProgrammingError, match="begin"):
            s.stream("BEGIN")

        with s.stream("SELECT 1"):  # one stream at a time
            with pytest.raises(walrouter.ProgrammingError) as e:
                s.stream("SELECT 2")
            assert e.value.code == "bad_state"
        assert s.query("SELECT 3").scalar() == 3


def test_bad_arguments_raise_before_anything_runs(cluster):
    with cluster.session() as s:
        with pytest.raises(walrouter.ProgrammingError, match="NUL"):
            s.stream("SELECT 1\x00 AND false")
        with pytest.raises(walrouter.DataError, match="NUL"):
            s.stream("SELECT $1::text", "a\x00b")
        for chunk in (0, -1, 1.5, "10", True, 2**31):
            with pytest.raises(walrouter.ProgrammingError, match="chunk"):
                s.stream("SELECT 1", chunk=chunk)
        assert not s.in_transaction


def test_closing_the_session_or_the_cluster_closes_the_stream(dsn):
    c = walrouter.connect(dsn)
    s = c.session()
    st = s.stream("SELECT g FROM generate_series(1, 5000) g")
    s.close()
    with pytest.raises(walrouter.InterfaceError):
        list(st)
    assert st.closed
    t = c.session()
    st2 = t.stream("SELECT g FROM generate_series(1, 5000) g")
    c.close()
    with pytest.raises(walrouter.InterfaceError):
        list(st2)


def test_commit_inside_a_stream_ends_it_and_a_new_stream_can_start(cluster):
    with cluster.session() as s:
        st = s.stream("SELECT g FROM generate_series(1, 5000) g")
        s.commit()  # ends the stream's transaction
        with pytest.raises(walrouter.Error):
            list(st)
        assert [r[0] for r in s.stream("SELECT 7")] == [7]


def test_memory_stays_flat_over_a_million_rows(cluster):
    rows, pad = 1_000_000, 100
    with cluster.session() as s:
        gc.collect()
        base = peak = rss_kb()
        n = 0
        for n, row in enumerate(s.stream(f"SELECT g, repeat('x', {pad}) FROM generate_series(1, {rows}) g"), 1):
            if n % 20000 == 0:
                assert row[0] == n
                peak = max(peak, rss_kb())
        assert n == rows
    growth_mb = (peak - base) / 1024
    # The rows as Python objects would take about 250 MB (the pad alone is
    # 100 MB); a stream holds one chunk of 1000 rows at a time.
    assert growth_mb < 40, f"RSS grew by {growth_mb:.1f} MB while streaming"
