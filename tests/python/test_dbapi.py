"""walrouter.dbapi: pyformat placeholders, transactions on one node (the
primary, or a fresh replica when read_only), routing in autocommit mode,
read-your-writes across connections, and errors."""

import pytest

import walrouter
from walrouter import dbapi

from conftest import PRIMARY, REPLICAS


# ---- pyformat -> $n ---------------------------------------------------------------------------

@pytest.mark.parametrize("sql, expected", [
    ("SELECT %s, %s", ("SELECT $1, $2", (), 2)),
    ("SELECT %(a)s, %(b)s, %(a)s", ("SELECT $1, $2, $1", ("a", "b"), 0)),
    ("SELECT '%s', %s", ("SELECT '%s', $1", (), 1)),
    ("SELECT 'it''s %s', %s", ("SELECT 'it''s %s', $1", (), 1)),
    ("SELECT E'\\' %s', %s", ("SELECT E'\\' %s', $1", (), 1)),
    ('SELECT 1 AS "%s", %s', ('SELECT 1 AS "%s", $1', (), 1)),
    ("SELECT $$ %s $$, $tag$ it's %s $tag$, %s", ("SELECT $$ %s $$, $tag$ it's %s $tag$, $1", (), 1)),
    ("SELECT 1 -- %s\n, %s", ("SELECT 1 -- %s\n, $1", (), 1)),
    ("SELECT /* %s /* nested %s */ %s */ %s", ("SELECT /* %s /* nested %s */ %s */ $1", (), 1)),
    ("SELECT 10 %% 3, '100%%', %s", ("SELECT 10 % 3, '100%', $1", (), 1)),
    ("SELECT a$b, %s FROM t", ("SELECT a$b, $1 FROM t", (), 1)),
    ("SELECT 'a%b', 5 % 2", ("SELECT 'a%b', 5 % 2", (), 0)),
])
def test_pyformat_becomes_dollar_n_and_quoted_text_is_left_alone(sql, expected):
    assert dbapi.convert(sql) == expected


def test_mixed_placeholder_kinds_are_refused():
    with pytest.raises(dbapi.ProgrammingError, match="mixes"):
        dbapi.convert("SELECT %s, %(a)s")


@pytest.mark.parametrize("sql, params, match", [
    ("SELECT %s, %s", (1,), "2 %s placeholders but 1 parameter was given"),
    ("SELECT %s", (1, 2), "1 %s placeholder but 2 parameters were given"),
    ("SELECT %(a)s, %(b)s", {"a": 1}, r"no value for the placeholder %\(b\)s"),
    ("SELECT %(a)s", (1,), "as a mapping"),
    ("SELECT %s", "ab", "must be a sequence"),
])
def test_parameters_that_do_not_fit_the_placeholders_are_a_programming_error(sql, params, match):
    with pytest.raises(dbapi.ProgrammingError, match=match):
        dbapi.bind(sql, params)


def test_without_parameters_the_text_is_sent_as_it_is(dsn):
    with dbapi.connect(dsn, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("SELECT '%s %%', 7 % 4")
        assert cur.fetchone() == ("%s %%", 3)
        cur.execute("SELECT %s::text || '%%', %(x)s::int" if False else "SELECT %s::text || '%%'", ("a",))
        assert cur.fetchone() == ("a%",)


# ---- transactions --------------------------------------------------------------------------------

def test_outside_autocommit_statements_run_in_one_transaction_on_the_primary(dsn, names, table):
    conn = dbapi.connect(dsn)
    try:
        cur = conn.cursor()
        assert not conn.in_transaction
        cur.execute(f"SELECT count(*) FROM {table}")
        assert conn.in_transaction and cur.node == names[PRIMARY] and cur.reason == "transaction"
        cur.execute(f"INSERT INTO {table} (v) VALUES (%s)", ("kept",))
        assert cur.node == names[PRIMARY] and cur.rowcount == 1
        conn.commit()
        assert not conn.in_transaction
        cur.execute(f"INSERT INTO {table} (v) VALUES (%s)", ("dropped",))
        conn.rollback()
        cur.execute(f"SELECT v FROM {table} ORDER BY id")
        assert cur.fetchall() == [("kept",)]
        conn.commit()
    finally:
        conn.close()


def test_a_read_only_connection_runs_its_transactions_on_one_fresh_replica(dsn, names, table):
    with dbapi.connect(dsn) as w:
        w.cursor().execute(f"INSERT INTO {table} (v) VALUES ('seen')")
        token = None
        w.commit()
        token = w.token
    conn = dbapi.connect(dsn, read_only=True, token=token)
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT v FROM {table}")
        assert cur.fetchall() == [("seen",)]  # the token's write, on a replica that has it
        first = cur.node
        assert first in (names[r] for r in REPLICAS) or first == names[PRIMARY]
        cur.execute("SELECT 1")
        assert cur.node == first  # the whole transaction on one node
        with pytest.raises(dbapi.Error) as e:
            cur.execute(f"INSERT INTO {table} (v) VALUES ('no')")
        assert e.value.sqlstate == "25006"
        conn.rollback()
        conn.cursor().execute("SELECT 1")
        with pytest.raises(dbapi.ProgrammingError):
            conn.read_only = False
        conn.rollback()
        conn.read_only = False
        conn.cursor().execute("SELECT 1")
    finally:
        conn.close()


def test_a_read_only_transaction_is_served_by_a_replica_when_one_is_fresh(dsn, names):
    conn = dbapi.connect(dsn, read_only=True)
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        assert cur.node in [names[r] for r in REPLICAS]
    finally:
        conn.close()


def test_autocommit_and_read_only_cannot_change_inside_a_transaction(dsn):
    conn = dbapi.connect(dsn)
    try:
        conn.cursor().execute("SELECT 1")
        with pytest.raises(dbapi.ProgrammingError, match="inside a transaction"):
            conn.autocommit = True
        with pytest.raises(dbapi.ProgrammingError, match="inside a transaction"):
            conn.read_only = True
        conn.commit()
        conn.autocommit = True
        conn.cursor().execute("SELECT 1")
        assert not conn.in_transaction
    finally:
        conn.close()


def test_a_failed_statement_aborts_the_transaction_until_rollback(dsn, table):
    conn = dbapi.connect(dsn)
    try:
        cur = conn.cursor()
        cur.execute(f"INSERT INTO {table} (id, v) VALUES (1, 'a')")
        with pytest.raises(dbapi.IntegrityError) as e:
            cur.execute(f"INSERT INTO {table} (id, v) VALUES (1, 'b')")
        assert e.value.sqlstate == "23505"
        with pytest.raises(dbapi.Error) as e:
            cur.execute("SELECT 1")
        assert e.value.sqlstate == "25P02"
        conn.rollback()
        cur.execute(f"SELECT count(*) FROM {table}")
        assert cur.fetchone() == (0,)
    finally:
        conn.close()


def test_the_connection_context_manager_commits_or_rolls_back_then_closes(dsn, table, lag):
    with dbapi.connect(dsn) as conn:
        conn.cursor().execute(f"INSERT INTO {table} (v) VALUES ('in')")
    assert conn.closed
    with pytest.raises(RuntimeError):
        with dbapi.connect(dsn) as conn:
            conn.cursor().execute(f"INSERT INTO {table} (v) VALUES ('out')")
            raise RuntimeError("boom")
    lag.wait_replay(*REPLICAS)  # the next connection has no token
    with dbapi.connect(dsn, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT v FROM {table}", ())
        assert list(cur) == [("in",)]


# ---- routing in autocommit mode -------------------------------------------------------------

def test_autocommit_reads_go_to_a_replica_and_writes_to_the_primary(dsn, names, table):
    with dbapi.connect(dsn, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        assert cur.node in [names[r] for r in REPLICAS] and cur.reason.startswith("replica")
        cur.execute(f"INSERT INTO {table} (v) VALUES (%(v)s) RETURNING id", {"v": "x"})
        assert cur.node == names[PRIMARY] and cur.reason == "write"
        assert cur.rowcount == 1 and cur.fetchone()[0] >= 1
        assert not conn.in_transaction


def test_autocommit_reads_see_the_connections_own_writes_under_paused_replay(dsn, names, table, lag):
    lag.pause(*REPLICAS)
    with dbapi.connect(dsn, autocommit=True) as conn:
        cur = conn.cursor()
        cur.executemany(f"INSERT INTO {table} (v) VALUES (%s)", [("a",), ("b",), ("c",)])
        assert cur.rowcount == 3
        cur.execute(f"SELECT v FROM {table} ORDER BY id")
        assert cur.fetchall() == [("a",), ("b",), ("c",)]
        assert cur.node == names[PRIMARY]  # no replica has them
        token = conn.token
    with dbapi.connect(dsn, autocommit=True, token=token) as other:  # the next request, same user
        cur = other.cursor()
        cur.execute(f"SELECT count(*) FROM {table}")
        assert cur.fetchone() == (3,)


def test_a_select_that_writes_is_moved_to_the_primary(dsn, names, table, lag):
    lag.wait_replay(*REPLICAS)  # a new session has no token: the replicas must have the table
    with dbapi.connect(dsn, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT nextval('{table}_id_seq')")
        assert cur.node == names[PRIMARY] and cur.reason == "primary_read_only"
        assert cur.fetchone()[0] >= 1


# ---- connections and cursors -----------------------------------------------------------------

def test_connections_from_one_dsn_share_a_cluster_and_a_given_cluster_is_used(dsn, cluster):
    a, b = dbapi.connect(dsn), dbapi.connect(dsn)
    try:
        assert a.cluster is b.cluster
    finally:
        a.close()
        b.close()
    with dbapi.connect(cluster) as c:
        assert c.cluster is cluster
    with pytest.raises(dbapi.ProgrammingError, match="read_budget_ms"):
        dbapi.connect(cluster, read_budget_ms=5)
    with pytest.raises(TypeError, match="dsn_or_cluster"):
        dbapi.connect(42)


def test_a_closed_connection_or_cursor_raises_interface_error(dsn):
    conn = dbapi.connect(dsn)
    cur = conn.cursor()
    cur.close()
    with pytest.raises(dbapi.InterfaceError):
        cur.execute("SELECT 1")
    cur = conn.cursor()
    conn.close()
    conn.close()
    for call in (lambda: cur.execute("SELECT 1"), conn.cursor, conn.commit, conn.rollback):
        with pytest.raises(dbapi.InterfaceError):
            call()
    assert "closed" in repr(conn)


def test_values_convert_both_ways_and_description_has_type_codes(dsn):
    import datetime
    import decimal
    with dbapi.connect(dsn, autocommit=True) as conn:
        cur = conn.cursor()
        when = datetime.datetime(2024, 5, 6, 7, 8, 9)
        cur.execute("SELECT %s::int, %s::numeric, %s::timestamp, %s::bytea, %s::bool, %s::text",
                    (1, decimal.Decimal("1.50"), when, dbapi.Binary(b"\x00\x01"), True, None))
        assert cur.fetchone() == (1, decimal.Decimal("1.50"), when, b"\x00\x01", True, None)
        assert [d[1] for d in cur.description] == [23, 1700, 1114, 17, 16, 25]
        assert cur.description[0][0] == "int4"


def test_errors_are_walroutes_own_classes(dsn):
    assert dbapi.Error is walrouter.Error and dbapi.ProgrammingError is walrouter.ProgrammingError
    with dbapi.connect(dsn, autocommit=True) as conn, pytest.raises(dbapi.ProgrammingError) as e:
        conn.cursor().execute("SELECT * FROM wr_no_such_table")
    assert e.value.sqlstate == "42P01"
