"""Where reads go, and what they see: read-your-writes (G1), monotonic reads
(G2), fresh replicas serving reads, and the fallback to the primary."""

import walrouter

from conftest import PRIMARY, REPLICAS, poll


def test_a_fresh_replica_serves_reads(cluster, names, table, lag):
    with cluster.session() as s:
        s.execute(f"INSERT INTO {table} (v) VALUES ($1)", "fresh")
        lag.wait_replay(*REPLICAS)
        r = s.query(f"SELECT v FROM {table}")
    assert r.rows == [("fresh",)]
    assert r.node in (names[1], names[2])
    assert r.reason.startswith("replica_")


def test_read_after_write_is_never_stale_when_replicas_are_paused(cluster, names, table, lag):
    lag.pause(*REPLICAS)
    with cluster.session() as writer, cluster.session() as stranger:
        assert writer.execute(f"INSERT INTO {table} (v) VALUES ($1)", "mine") == 1
        r = writer.query(f"SELECT v FROM {table}")
        assert r.rows == [("mine",)]
        assert r.node == names[PRIMARY]
        # The lag is real: a session that never wrote reads a replica without it.
        other = stranger.query(f"SELECT v FROM {table}")
        assert other.node in (names[1], names[2]) and other.rows == []


def test_read_your_writes_survives_the_token_passed_between_requests(dsn, cluster, names, table, lag):
    lag.pause(*REPLICAS)
    with cluster.session() as first_request:
        first_request.execute(f"INSERT INTO {table} (v) VALUES ($1)", "posted")
        cookie = first_request.token
    assert isinstance(cookie, str) and cookie
    # The next request may land on another worker process: another Cluster.
    with walrouter.connect(dsn) as worker2, worker2.session(token=cookie) as next_request:
        r = next_request.query(f"SELECT v FROM {table}")
    assert r.rows == [("posted",)]
    assert r.node == names[PRIMARY]


def test_reads_fall_back_to_the_primary_beyond_the_budget(dsn, names, table, lag):
    with walrouter.connect(dsn, read_budget_ms=50) as c, c.session() as s:
        lag.pause(*REPLICAS)
        s.execute(f"INSERT INTO {table} (v) VALUES ('x')")
        r = s.query(f"SELECT count(*) FROM {table}")
        assert r.scalar() == 1
        assert r.node == names[PRIMARY]
        assert r.reason in ("primary_budget", "primary_lagging")
        # The lag shows in the status, and reads return to replicas once it is gone.
        c.refresh()
        status = {n.name: n for n in c.status()}
        assert all(status[names[i]].lag_bytes for i in REPLICAS)
        lag.resume(*REPLICAS)
        r = s.query(f"SELECT count(*) FROM {table}")
        assert r.scalar() == 1
        assert r.node in (names[1], names[2])


def test_primary_keyword_reads_from_the_primary(cluster, names):
    with cluster.session() as s:
        r = s.query("SELECT 1", primary=True)
    assert r.node == names[PRIMARY] and r.reason == "primary_forced"


def test_require_sees_what_another_session_wrote(cluster, names, table, lag):
    lag.pause(*REPLICAS)
    with cluster.session() as job, cluster.session() as viewer:
        job.execute(f"INSERT INTO {table} (v) VALUES ('from the job')")
        viewer.require(job.token)
        r = viewer.query(f"SELECT v FROM {table}")
    assert r.rows == [("from the job",)]


def test_reads_never_go_back_in_time_when_they_change_replicas(cluster, names, table, lag):
    """Replica 1 is behind replica 2. A session that saw the newer state on
    replica 2 must not see the older one when replica 2 goes away."""
    with cluster.session() as writer:
        writer.execute(f"INSERT INTO {table} (v) VALUES ('old')")
    lag.wait_replay(*REPLICAS)
    lag.pause(1)
    with cluster.session() as writer:
        writer.execute(f"UPDATE {table} SET v = 'new'")
    lag.wait_replay(2)

    # Sessions spread over the replicas: find one whose first read was on node 2.
    sessions = []
    reader = None
    for _ in range(64):
        s = cluster.session()
        sessions.append(s)
        r = s.query(f"SELECT v FROM {table}")
        assert r.node != names[PRIMARY]
        if r.node == names[2]:
            assert r.rows == [("new",)]
            reader = s
            break
        assert r.node == names[1] and r.rows == [("old",)]  # node 1 is behind
        # Reading a newer replica after an older one is allowed (and monotonic):
        # after node 1, this session may well be sent to node 2 later.
    assert reader is not None, "no session was served by replica 2"

    lag.stop_node(2)
    r = reader.query(f"SELECT v FROM {table}")
    assert r.rows == [("new",)], f"went back in time on {r.node} ({r.reason})"
    assert r.node != names[1]
    for s in sessions:
        s.close()


def test_successive_reads_are_monotonic_under_a_moving_writer(cluster, names, table, lag):
    """A writer keeps incrementing while replica 1 is paused and replica 2
    streams; every reader session sees a non-decreasing value."""
    with cluster.session() as w:
        w.execute(f"INSERT INTO {table} (id, v) VALUES (1, '0')")
    lag.wait_replay(*REPLICAS)
    lag.pause(1)
    readers = [cluster.session() for _ in range(6)]
    seen = [0] * len(readers)
    served = set()
    with cluster.session() as w:
        for i in range(1, 21):
            w.execute(f"UPDATE {table} SET v = $1 WHERE id = 1", str(i))
            for k, s in enumerate(readers):
                r = s.query(f"SELECT v::int FROM {table} WHERE id = 1")
                served.add(r.node)
                assert r.scalar() >= seen[k], f"reader {k} went back from {seen[k]} to {r.scalar()} on {r.node}"
                seen[k] = r.scalar()
    for s in readers:
        s.close()
    assert served & {names[1], names[2]}, "no read was served by a replica"


def test_status_reports_every_node(cluster, names):
    # A replica behind the primary's first sample shows "lagging" (lag not
    # known) until the next probe places it.
    def placed():
        status = cluster.status()
        return status if all(n.state != "lagging" for n in status) else None

    status = poll(placed, "both replicas placed", timeout=10)
    assert [n.name for n in status] == list(names)
    by_name = {n.name: n for n in status}
    assert by_name[names[PRIMARY]].role == "primary"
    for i in REPLICAS:
        n = by_name[names[i]]
        assert n.role == "replica" and n.state in ("streaming", "catching_up")
        assert "/" in n.replay_lsn and n.port == int(names[i].rsplit(":", 1)[1])
