"""Explicit transactions stay on one node (G6), commit at the end of the
block and roll back when it raises."""

import pytest

import walrouter

from conftest import PRIMARY, REPLICAS

WHERE = "SELECT inet_server_port(), pg_backend_pid()"


def test_a_transaction_runs_on_one_primary_connection_and_commits(cluster, names, table):
    with cluster.session() as s:
        with s.transaction() as tx:
            assert tx is s and s.in_transaction
            s.execute(f"INSERT INTO {table} (v) VALUES ($1)", "a")
            first = s.query(WHERE)
            s.execute(f"INSERT INTO {table} (v) VALUES ($1)", "b")
            seen = [s.query(WHERE) for _ in range(3)]
            assert s.query(f"SELECT count(*) FROM {table}").scalar() == 2
        assert not s.in_transaction
        assert {r.rows[0] for r in seen} == {first.rows[0]}
        assert {r.node for r in seen} == {names[PRIMARY]}
        assert {r.reason for r in seen} == {"transaction"}
        assert s.query(f"SELECT v FROM {table} ORDER BY v").rows == [("a",), ("b",)]


def test_a_transaction_rolls_back_when_the_block_raises(cluster, table):
    class Boom(Exception):
        pass

    with cluster.session() as s:
        with pytest.raises(Boom):
            with s.transaction():
                s.execute(f"INSERT INTO {table} (v) VALUES ('never')")
                raise Boom()
        assert not s.in_transaction
        assert s.query(f"SELECT count(*) FROM {table}", primary=True).scalar() == 0


def test_a_failed_statement_rolls_the_transaction_back(cluster, table):
    with cluster.session() as s:
        with pytest.raises(walrouter.IntegrityError):
            with s.transaction():
                s.execute(f"INSERT INTO {table} (id, v) VALUES (1, 'a')")
                s.execute(f"INSERT INTO {table} (id, v) VALUES (1, 'b')")
        assert s.query(f"SELECT count(*) FROM {table}", primary=True).scalar() == 0

        # Without the block: COMMIT after a failure reports the rollback.
        s.begin()
        with pytest.raises(walrouter.ProgrammingError):
            s.query("SELECT * FROM wr_no_such_table")
        with pytest.raises(walrouter.DatabaseError) as e:
            s.commit()
        assert e.value.sqlstate == "25P02"
        assert not s.in_transaction


def test_a_read_only_transaction_stays_on_one_replica(cluster, names, table, lag):
    with cluster.session() as s:
        s.execute(f"INSERT INTO {table} (v) VALUES ('r')")
        lag.wait_replay(*REPLICAS)
        with s.transaction(read_only=True):
            seen = [s.query(WHERE) for _ in range(4)]
            assert s.query(f"SELECT v FROM {table}").rows == [("r",)]
        assert len({r.rows[0] for r in seen}) == 1
        assert len({r.node for r in seen}) == 1
        assert seen[0].node in (names[1], names[2])


def test_a_write_in_a_read_only_transaction_fails_and_rolls_back(cluster, table, lag):
    lag.wait_replay(*REPLICAS)  # the replica has the table
    with cluster.session() as s:
        with pytest.raises(walrouter.InternalError) as e:
            with s.transaction(read_only=True):
                s.execute(f"INSERT INTO {table} (v) VALUES ('no')")
        assert e.value.sqlstate == "25006"
        assert not s.in_transaction
        assert s.query(f"SELECT count(*) FROM {table}", primary=True).scalar() == 0


def test_transaction_misuse_raises_programming_error(cluster):
    with cluster.session() as s:
        with pytest.raises(walrouter.ProgrammingError):
            s.commit()
        with s.transaction():
            with pytest.raises(walrouter.ProgrammingError):
                s.begin()
        s.rollback()  # nothing open: a no-op


def test_closing_a_session_rolls_back_its_open_transaction(cluster, table):
    s = cluster.session()
    s.begin()
    s.execute(f"INSERT INTO {table} (v) VALUES ('lost')")
    s.close()
    with cluster.session() as t:
        assert t.query(f"SELECT count(*) FROM {table}", primary=True).scalar() == 0
