"""walrouter.aio against the real cluster: many tasks on one loop with
read-your-writes while replay is paused, cancellation that leaves nothing
running and the connection clean, a frozen replica that never blocks the
loop, streams, transactions, errors, and the aiohttp example with its cookie.

Each test runs its own loop (asyncio.run). Tests assert what the server and
the results show, and order (what finished while what was still in flight),
not durations."""

import asyncio
import importlib.util
import os
from pathlib import Path

import pytest

import walrouter
import walrouter.aio as aio

from conftest import PRIMARY, REPLICAS, cluster_sh, psql

ROOT = Path(__file__).resolve().parents[2]


def run(coro, timeout=120):
    """Runs coro on a new loop; the timeout only bounds a hung test."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def apoll(condition, what, timeout=30.0):
    """Polls condition() (run in a thread: it may call psql) until truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await asyncio.to_thread(condition)
        if value:
            return value
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


def backends(tag):
    """(node, pid) of every backend running a statement that contains tag."""
    sql = (f"SELECT pid FROM pg_stat_activity WHERE query LIKE '%{tag}%' AND state = 'active' "
           "AND pid <> pg_backend_pid()")
    return [(n, int(pid)) for n in (PRIMARY, *REPLICAS) for pid in psql(n, sql).split()]


def backend_state(node, pid):
    """The pg_stat_activity state of a backend ("" when it is gone)."""
    return psql(node, f"SELECT coalesce((SELECT state FROM pg_stat_activity WHERE pid = {pid}), '')")


@pytest.fixture
def acluster(cluster):
    return aio.AsyncCluster(cluster)


# ---- many tasks, read-your-writes --------------------------------------------------


def test_200_concurrent_tasks_read_their_writes_while_replay_is_paused(dsn, names, table, lag):
    lag.pause(*REPLICAS)
    in_flight = max_in_flight = 0

    async def writer(c, i):
        nonlocal in_flight, max_in_flight
        in_flight += 1
        max_in_flight = max(max_in_flight, in_flight)
        async with c.session() as s:
            rid = (await s.write(f"INSERT INTO {table} (v) VALUES ($1) RETURNING id", f"task {i}")).scalar()
            mine = await s.query(f"SELECT v FROM {table} WHERE id = $1", rid)
            token = s.token
        async with c.session(token=token) as s:  # the next request of the same user
            again = await s.query(f"SELECT v FROM {table} WHERE id = $1", rid)
        in_flight -= 1
        return i, mine, again

    async def reader(c):
        async with c.session() as s:  # wrote nothing: may read a replica, which lacks the new rows
            return await s.query(f"SELECT count(*) FROM {table}")

    async def a_replica_read(c):
        """A fresh session's read, once a replica serves one (a replica whose
        connect timed out on a loaded machine is down until probed again)."""
        for _ in range(100):
            r = await reader(c)
            if r.node != names[PRIMARY]:
                return r
            await asyncio.sleep(0.1)
        pytest.fail("no replica served a fresh session's read")

    async def main():
        # Connections stay pooled (pool_size): many tasks, few new logins. No
        # time limit on lag: on a loaded machine the paused replicas could
        # pass the default 10 s and rightly serve nothing.
        async with await aio.connect(dsn, pool_max=64, pool_size=64, read_budget_ms=5000, max_lag_ms=None) as c:
            done = await asyncio.gather(*(writer(c, i) for i in range(200)), *(reader(c) for _ in range(20)))
            return done, await a_replica_read(c)

    results, replica_read = run(main())
    writes, reads = results[:200], results[200:]
    for i, mine, again in writes:
        assert mine.rows == [(f"task {i}",)] and again.rows == [(f"task {i}",)]
        assert mine.node == names[PRIMARY] and again.node == names[PRIMARY]  # no replica has it
    assert max_in_flight == 200  # every task was in flight at once
    for r in reads + [replica_read]:  # the lag is real
        assert r.node == names[PRIMARY] or r.scalar() == 0
    assert replica_read.scalar() == 0
    lag.resume(*REPLICAS)
    with walrouter.connect(dsn) as c, c.session() as s:
        assert s.query(f"SELECT count(*) FROM {table}", primary=True).scalar() == 200


def test_one_session_shared_by_tasks_serializes_their_calls(acluster, table):
    async def main():
        async with acluster.session() as s:
            ids = await asyncio.gather(*(s.write(f"INSERT INTO {table} (v) VALUES ($1) RETURNING id", str(i))
                                         for i in range(20)))
            rows = await s.query(f"SELECT count(*) FROM {table}")  # sees all 20 (read-your-writes)
            return [r.scalar() for r in ids], rows.scalar()

    ids, count = run(main())
    assert sorted(ids) == list(range(1, 21)) and count == 20


# ---- cancellation ----------------------------------------------------------------


def test_cancelling_a_task_cancels_its_statement_and_the_connection_comes_back_clean(dsn):
    async def main():
        # A long read budget: the replica read is still on its replica when canceled.
        async with await aio.connect(dsn, read_budget_ms=60000) as c, c.session() as s:
            for primary in (True, False):
                tag = f"aio_cancel_{os.getpid()}_{primary}"
                task = asyncio.create_task(s.query(f"SELECT pg_sleep(30) /* {tag} */", primary=primary))
                [(node, pid)] = await apoll(lambda: backends(tag), "the statement to run on the server")
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert backends(tag) == []  # right after: canceled on the server, not abandoned
                # Its connection is still open and clean: idle, not gone nor in an
                # aborted transaction. Polled: back in the pool, the connection may
                # be running the background refresher's probe for a moment.
                await apoll(lambda: backend_state(node, pid) == "idle", "the connection to be idle")
                assert node == PRIMARY if primary else node in REPLICAS
                assert (await s.query("SELECT 42")).scalar() == 42
                assert not s.in_transaction

    run(main())


def test_a_timeout_inside_a_transaction_cancels_and_rolls_back(acluster, table):
    tag = f"aio_timeout_{os.getpid()}"

    async def main():
        async with acluster.session() as s:
            with pytest.raises(asyncio.TimeoutError):
                async with s.transaction():
                    await s.execute(f"INSERT INTO {table} (v) VALUES ('rolled back')")
                    await asyncio.wait_for(s.execute(f"SELECT pg_sleep(30) /* {tag} */"), 0.5)
            assert backends(tag) == []
            assert not s.in_transaction
            assert (await s.query(f"SELECT count(*) FROM {table}", primary=True)).scalar() == 0
            async with s.transaction():
                await s.execute(f"INSERT INTO {table} (v) VALUES ('committed')")
            assert (await s.query(f"SELECT v FROM {table}")).rows == [("committed",)]

    run(main())


# ---- a frozen replica never blocks the loop -------------------------------------------


def test_a_frozen_replica_never_blocks_the_loop(dsn, names):
    for n in REPLICAS:  # leftovers of an interrupted run
        cluster_sh("thaw", n)

    async def main():
        # No background probe during the test: the replicas are still taken for
        # up when the read starts, so it is sent to a frozen one.
        c = await aio.connect(dsn, read_budget_ms=3000, refresh_interval_ms=600000)
        try:
            async with c.session() as s:  # pooled connections to every node, positions known
                for _ in range(6):
                    await s.query("SELECT 1")
                await s.execute("SELECT 1")
            for n in REPLICAS:
                await asyncio.to_thread(cluster_sh, "freeze", n)
            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            tick_task = asyncio.create_task(ticker())
            try:
                async with c.session() as s, c.session() as other:
                    read = asyncio.create_task(s.query("SELECT 'served'"))
                    await asyncio.sleep(0)  # the read is sent to a (frozen) replica
                    start = ticks
                    # A statement that does not use the frozen nodes completes meanwhile.
                    assert await other.execute("SELECT 1") == 1
                    assert not read.done()
                    r = await read
                    during = ticks - start
            finally:
                tick_task.cancel()
            return r, during
        finally:
            for n in REPLICAS:
                await asyncio.to_thread(cluster_sh, "thaw", n)
            await c.close()

    try:
        r, during = run(main())
    finally:
        for n in REPLICAS:
            cluster_sh("thaw", n)
            cluster_sh("wait-replay", n)
    assert r.rows == [("served",)]
    assert r.node == names[PRIMARY] and r.reason == "primary_budget"  # it tried a replica first
    assert during >= 10  # the loop kept running timers while the read waited on the frozen node


# ---- streams -------------------------------------------------------------------------


def test_async_iteration_streams_rows_in_chunks_from_one_node(acluster):
    async def main():
        async with acluster.session() as s:
            async with s.stream("SELECT g, g * 2 FROM generate_series(1, 2500) g", chunk=1000) as rows:
                assert s.in_transaction
                got = [row async for row in rows]
            assert got == [(g, g * 2) for g in range(1, 2501)]
            assert rows.columns == ("g", "?column?") and rows.node is not None
            assert rows.closed and not s.in_transaction
            # awaited: opened at once; empty
            empty = await s.stream("SELECT 1 WHERE false")
            assert [row async for row in empty] == [] and empty.closed
            # plain async for, then break: the abandoned stream is ended by the next call
            async for row in s.stream("SELECT g FROM generate_series(1, 10) g", chunk=3):
                if row == (5,):
                    break
            assert (await s.query("SELECT 7")).scalar() == 7
            assert not s.in_transaction
            # an error of the statement is raised when the stream opens
            with pytest.raises(walrouter.ProgrammingError) as e:
                await s.stream("SELECT * FROM aio_no_such_table")
            assert e.value.sqlstate == "42P01" and not s.in_transaction
            # not inside a transaction
            async with s.transaction():
                with pytest.raises(walrouter.ProgrammingError, match="transaction is open"):
                    await s.stream("SELECT 1")

    run(main())


# ---- errors, tokens, lifetime ---------------------------------------------------------------


def test_errors_tokens_and_closing_match_the_sync_api(acluster, names, table):
    async def main():
        s = acluster.session()
        with pytest.raises(walrouter.ProgrammingError) as e:
            await s.query("SELECT * FROM aio_no_such_table")
        assert e.value.sqlstate == "42P01" and e.value.node in names
        with pytest.raises(walrouter.IntegrityError) as e:
            await s.execute(f"INSERT INTO {table} (id, v) VALUES (1, 'a'), (1, 'b')")
        assert e.value.sqlstate == "23505" and e.value.node == names[PRIMARY]
        with pytest.raises(walrouter.ProgrammingError, match="transaction"):
            await s.execute("BEGIN")
        with pytest.raises(TypeError):
            await s.query(b"SELECT 1")
        with pytest.raises(walrouter.TokenError):
            acluster.session(token="2.not-a-token")
        assert await s.execute(f"INSERT INTO {table} (v) VALUES ($1)", None) == 1
        resumed = acluster.session(token=s.token)
        assert resumed.need == s.need
        await resumed.close()
        await s.close()
        await s.close()  # idempotent
        assert s.closed
        with pytest.raises(walrouter.InterfaceError):
            await s.query("SELECT 1")

    run(main())


def test_closing_the_cluster_closes_its_sessions_and_rolls_back(dsn, table):
    async def main():
        c = await aio.connect(dsn)
        s = c.session()
        await s.begin()
        await s.execute(f"INSERT INTO {table} (v) VALUES ('never committed')")
        await c.close()
        assert s.closed and c.closed

    run(main())
    with walrouter.connect(dsn) as c, c.session() as s:
        assert s.query(f"SELECT count(*) FROM {table}", primary=True).scalar() == 0


# ---- the aiohttp example ----------------------------------------------------------------


def test_the_aiohttp_example_reads_its_writes_through_the_cookie(dsn, names, lag):
    import aiohttp
    from aiohttp.test_utils import TestClient, TestServer

    spec = importlib.util.spec_from_file_location("aiohttp_app", ROOT / "examples/python/aiohttp_app.py")
    app_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app_mod)
    note = f"note {os.getpid()}"

    async def main():
        async with TestClient(TestServer(app_mod.make_app(dsn))) as user:
            await user.get("/")  # the table exists now (created on startup)
            lag.pause(*REPLICAS)
            posted = await user.post("/notes", data={"note": note})
            assert posted.status == 201 and posted.headers["X-Walrouter-Node"] == names[PRIMARY]
            page = await user.get("/")  # the cookie carries the token
            assert note in [n["note"] for n in (await page.json())["notes"]]
            async with aiohttp.ClientSession() as stranger:  # no cookie: a replica serves it, without the note
                async with stranger.get(user.make_url("/")) as other:
                    assert other.headers["X-Walrouter-Node"] in (names[1], names[2])
                    assert note not in [n["note"] for n in (await other.json())["notes"]]
            status = await (await user.get("/status")).json()
            assert [n["name"] for n in status] == names

    run(main())
