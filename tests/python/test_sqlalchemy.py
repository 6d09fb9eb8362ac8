"""SQLAlchemy 1.4 through the postgresql+walrouter:// dialect: the ORM's
reads reach replicas, its writes the primary, a user's reads see that
user's writes (also in the next request, through the token) with replay
paused, and transactions stay on one node."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

sa = pytest.importorskip("sqlalchemy")
from sqlalchemy import Column, Integer, String, event, select  # noqa: E402
from sqlalchemy.orm import Session, declarative_base  # noqa: E402

import walrouter.sqlalchemy as wsa  # noqa: E402

from conftest import PRIMARY, REPLICAS, Lag, poll  # noqa: E402

Base = declarative_base()


class Note(Base):
    __tablename__ = f"wr_sa_notes_{os.getpid()}"
    id = Column(Integer, primary_key=True)
    author = Column(String(40), nullable=False)
    body = Column(String(200), nullable=False)


@pytest.fixture
def engine(dsn):
    # drop_all and create_all ask whether the table exists by a read (the
    # previous test's teardown dropped it): the replicas must have that.
    Lag.wait_replay(*REPLICAS)
    e = sa.create_engine(wsa.url_from_dsn(dsn, read_budget_ms=300), isolation_level="AUTOCOMMIT")
    Base.metadata.drop_all(e)  # leftovers of an interrupted run
    Base.metadata.create_all(e)
    yield e
    Base.metadata.drop_all(e)
    e.dispose()


def ran(engine):
    """A list that gets (first word, node, reason) of every statement."""
    log = []

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):
        log.append((statement.split()[0].upper(), cursor.node, cursor.reason))
    return log


def request(engine, token, author, body=None):
    with engine.connect() as conn:
        dbapi_conn = conn.connection.connection
        dbapi_conn.resume(token)
        with Session(bind=conn) as orm:
            if body is not None:
                orm.add(Note(author=author, body=body))
                orm.commit()
            notes = orm.scalars(select(Note.body).where(Note.author == author).order_by(Note.id)).all()
        return notes, dbapi_conn.token


def test_the_dialect_is_found_by_its_url_and_reads_reach_a_replica(engine, names):
    assert type(engine.dialect).__name__ == "WalrouterDialect" and engine.dialect.driver == "walrouter"
    log = ran(engine)

    def read_on_a_replica():
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 40 + :n"), {"n": 2}).scalar() == 42
        return log[-1][1] in [names[r] for r in REPLICAS] and log[-1][2].startswith("replica")

    # Until a probe measured the replicas' lag they serve nothing (see below).
    poll(read_on_a_replica, "a read on a replica", detail=lambda: f"the last statements ran as {log[-2:]}")


def test_orm_writes_go_to_the_primary_and_the_users_reads_see_them_with_replay_paused(engine, names, lag):
    log = ran(engine)
    lag.pause(*REPLICAS)
    notes, token = request(engine, None, "ada", "first")
    assert notes == ["first"]
    insert = [e for e in log if e[0] == "INSERT"]
    assert insert and insert[0][1:] == (names[PRIMARY], "write")
    assert log[-1][1] == names[PRIMARY]  # no replica has the note yet
    # The next request, on whatever pooled connection, resumes from the token.
    notes, token = request(engine, token, "ada")
    assert notes == ["first"]
    # Another user's session has nothing to wait for: a replica serves it.
    notes, _ = request(engine, None, "bob")
    assert notes == [] and log[-1][1] in [names[r] for r in REPLICAS]


def test_transactions_run_on_the_primary_and_read_only_ones_on_a_replica(dsn, names):
    # The previous test's teardown dropped its table: until the replicas
    # have replayed that, a cluster opened now finds them behind the
    # primary's first sample, and they serve nothing until probed again.
    Lag.wait_replay(*REPLICAS)
    e = sa.create_engine(wsa.url_from_dsn(dsn))  # the default isolation level: transactions
    log = ran(e)
    try:
        with e.begin() as conn:
            conn.execute(sa.text("SELECT 1"))
            conn.execute(sa.text("SELECT 2"))
        assert [x[1:] for x in log[-2:]] == [(names[PRIMARY], "transaction")] * 2
        def read_only_transaction():
            with e.connect().execution_options(postgresql_readonly=True) as conn:
                conn.execute(sa.text("SELECT 1"))
                node = log[-1][1]
                conn.execute(sa.text("SELECT 2"))
                assert log[-1][1] == node  # both on one node
            return node in [names[r] for r in REPLICAS]

        # Right after the engine opened its cluster the replicas' lag is not
        # known yet (they serve nothing until a probe measured it): then the
        # transaction runs on the primary. Once they are known, on a replica.
        poll(read_only_transaction, "a read-only transaction on a replica",
             detail=lambda: f"the last statements ran as {log[-4:]}")
    finally:
        e.dispose()


def test_urls_and_options():
    url = wsa.url_from_dsn("postgresql://u:p%40ss@h1:5432,h2:5433/db?sslmode=disable", read_budget_ms=200)
    assert url == "postgresql+walrouter://u:p%40ss@/db?host=h1:5432&host=h2:5433&sslmode=disable&read_budget_ms=200"
    u = sa.engine.make_url(url)
    assert wsa.dsn_from_url(u) == "postgresql://u:p%40ss@h1:5432,h2:5433/db?sslmode=disable"
    assert wsa.options_from_url(u) == {"read_budget_ms": "200"}
    u = sa.engine.make_url("postgresql+walrouter://u@h0:5000/db?host=h1:5001")
    assert wsa.dsn_from_url(u) == "postgresql://u@h0:5000,h1:5001/db"


def test_an_isolation_level_walrouter_does_not_run_is_refused(dsn):
    e = sa.create_engine(wsa.url_from_dsn(dsn), isolation_level="SERIALIZABLE")
    try:
        with pytest.raises(sa.exc.ArgumentError, match="AUTOCOMMIT"):
            e.connect()
    finally:
        e.dispose()


def test_the_orm_example_runs(dsn, names):
    example = Path(__file__).resolve().parents[2] / "examples/python/orm.py"
    p = subprocess.run([sys.executable, str(example), dsn], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "after writing: ['first note']" in p.stdout and "next request: ['first note']" in p.stdout
    assert f"INSERT   {names[PRIMARY]} (write)" in p.stdout
