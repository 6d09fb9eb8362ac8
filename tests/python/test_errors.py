"""Errors follow PEP 249 and carry sqlstate, node and code; passwords never
appear in a message or a repr."""

import pickle
import re

import pytest

import walrouter

from conftest import PRIMARY

PASSWORD = "walrouter-secret"  # tests/cluster.sh's password


def test_pep249_module_globals_and_hierarchy():
    assert walrouter.apilevel == "2.0"
    assert walrouter.threadsafety == 2
    assert walrouter.paramstyle == "numeric_dollar"  # $1, $2, ...: not PEP 249's "numeric" (:1)
    from walrouter import dbapi
    assert (dbapi.apilevel, dbapi.paramstyle, dbapi.threadsafety) == ("2.0", "pyformat", 1)
    assert issubclass(walrouter.InterfaceError, walrouter.Error)
    assert issubclass(walrouter.DatabaseError, walrouter.Error)
    for cls in (walrouter.OperationalError, walrouter.IntegrityError, walrouter.ProgrammingError,
                walrouter.DataError, walrouter.NotSupportedError, walrouter.InternalError):
        assert issubclass(cls, walrouter.DatabaseError)
    assert issubclass(walrouter.UnknownOutcomeError, walrouter.OperationalError)
    assert issubclass(walrouter.NoPrimaryError, walrouter.OperationalError)
    assert issubclass(walrouter.TokenError, walrouter.InterfaceError)


def test_unique_violation_is_an_integrity_error_from_the_primary(cluster, names, table):
    with cluster.session() as s:
        s.execute(f"INSERT INTO {table} (id, v) VALUES (1, 'a')")
        with pytest.raises(walrouter.IntegrityError) as e:
            s.execute(f"INSERT INTO {table} (id, v) VALUES (1, 'b')")
    err = e.value
    assert err.sqlstate == "23505"
    assert err.node == names[PRIMARY]
    assert err.code == "sql_error"
    assert "duplicate key" in str(err)
    assert isinstance(err, walrouter.DatabaseError)


def test_undefined_table_is_a_programming_error(cluster):
    with cluster.session() as s, pytest.raises(walrouter.ProgrammingError) as e:
        s.query("SELECT * FROM wr_no_such_table")
    assert e.value.sqlstate == "42P01"
    assert e.value.node in cluster.nodes


def test_division_by_zero_is_a_data_error(cluster):
    with cluster.session() as s, pytest.raises(walrouter.DataError) as e:
        s.query("SELECT 1 / $1::int", 0)
    assert e.value.sqlstate == "22012"


def test_a_session_works_after_an_error(cluster):
    with cluster.session() as s:
        with pytest.raises(walrouter.ProgrammingError):
            s.query("SELEC 1")
        assert s.query("SELECT 2").scalar() == 2


@pytest.mark.parametrize("bad", ["not a dsn", "host=127.0.0.1 no_such_keyword=1", "postgresql://h/db?bogus=1"])
def test_a_malformed_dsn_is_a_programming_error(bad):
    with pytest.raises(walrouter.ProgrammingError) as e:
        walrouter.connect(bad)
    assert e.value.code == "bad_argument"


def test_an_unreachable_cluster_is_an_operational_error_without_the_password():
    dsn = f"postgresql://walrouter:{PASSWORD}@127.0.0.1:1,127.0.0.1:2/walrouter"
    with pytest.raises(walrouter.OperationalError) as e:
        walrouter.connect(dsn, connect_timeout_s=2)
    assert PASSWORD not in str(e.value)
    assert "127.0.0.1:1" in str(e.value)


def test_a_wrong_password_is_reported_without_it(dsn):
    wrong = "Wrong-Pass-123"
    bad = re.sub(r"(://[^:]+:)[^@]*@", rf"\g<1>{wrong}@", dsn)
    with pytest.raises(walrouter.OperationalError) as e:
        walrouter.connect(bad)
    assert wrong not in str(e.value) and "password" in str(e.value)


def test_a_wrong_password_says_authentication_failed_and_names_each_node_once(dsn, names):
    bad = re.sub(r"(://[^:]+:)[^@]*@", r"\g<1>Wrong-Pass-123@", dsn)
    with pytest.raises(walrouter.OperationalError) as e:
        walrouter.connect(bad)
    err = e.value
    assert str(err).startswith('authentication failed: password authentication failed for user "walrouter"')
    assert "reachable" not in str(err)
    assert (err.sqlstate, err.node, err.code) == ("28P01", names[0], "connect_error")
    for name in names:
        assert str(err).count(name) == 1, (name, str(err))


def test_an_unknown_database_says_so_with_sqlstate_and_node(dsn, names):
    bad = re.sub(r"/[^/?]+(\?|$)", r"/wr_no_such_db\1", dsn, count=1)
    with pytest.raises(walrouter.OperationalError) as e:
        walrouter.connect(bad)
    err = e.value
    assert str(err).startswith('the database does not exist: database "wr_no_such_db" does not exist')
    assert (err.sqlstate, err.node) == ("3D000", names[0])
    for name in names:
        assert str(err).count(name) == 1


@pytest.mark.parametrize("sql, params, takes, given", [("SELECT $1::int, $2::int", (1,), 2, 1),
                                                       ("SELECT $1::int", (1, 2), 1, 2),
                                                       ("SELECT $1::int", (), 1, 0)])
def test_a_parameter_count_mismatch_is_a_programming_error_naming_no_internal_statement(cluster, sql, params,
                                                                                        takes, given):
    with cluster.session() as s:
        for call in (s.query, s.execute, lambda q, *p: s.query(q, *p, primary=True)):
            with pytest.raises(walrouter.ProgrammingError) as e:
                call(sql, *params)
            msg = str(e.value)
            assert f"takes {takes} parameter" in msg and f"but {given} w" in msg, msg
            assert '"wr' not in msg and "prepared statement" not in msg
            assert e.value.code == "bad_argument" and e.value.sqlstate == "08P01"
        assert s.query("SELECT $1::int", 5).scalar() == 5  # the session goes on


@pytest.mark.parametrize("sql", ["SELECT %s::int", "SELECT ?::int", "SELECT %(n)s::int"])
def test_other_drivers_placeholders_get_a_hint_about_dollar_one(cluster, sql):
    with cluster.session() as s, pytest.raises(walrouter.ProgrammingError) as e:
        s.query(sql, 1)
    assert "$1" in str(e.value) and "hint" in str(e.value)
    assert e.value.sqlstate in ("42601", "08P01")


def test_no_hint_when_the_marks_are_quoted_text(cluster):
    with cluster.session() as s, pytest.raises(walrouter.ProgrammingError) as e:
        s.query("SELEC '%s ?'")
    assert "hint" not in str(e.value)


@pytest.mark.parametrize("token", [b"2.1.0.-.0.0", 5, 1.5, ["x"]])
def test_a_token_of_another_type_is_a_type_error_naming_the_argument(cluster, token):
    with pytest.raises(TypeError, match=r"^token must be str or None, not " + type(token).__name__):
        cluster.session(token=token)
    with cluster.session() as s:
        with pytest.raises(TypeError, match="^token must be str"):
            s.resume(token)
        with pytest.raises(TypeError, match="^token must be str"):
            s.require(token)


def test_none_and_empty_tokens_are_no_token(cluster):
    with cluster.session() as w:
        w.execute("SELECT 1")
        with cluster.session(token=w.token) as s:
            assert s.need != "0/0"
            s.resume("")
            assert s.need == "0/0"
            s.resume(w.token)
            s.resume(None)
            assert s.need == "0/0"
            s.require("")
            assert s.need == "0/0"


def test_too_many_parameters_is_a_programming_error(cluster):
    with cluster.session() as s:
        for call in (s.query, s.execute, s.write):
            with pytest.raises(walrouter.ProgrammingError, match="at most 65535") as e:
                call("SELECT 1", *range(65536))
            assert e.value.code == "bad_argument"


@pytest.mark.parametrize("sql", ["", "   ", "-- only a comment", "/* nothing */"])
def test_empty_sql_says_so(cluster, sql):
    with cluster.session() as s:
        for call in (s.query, s.execute):
            with pytest.raises(walrouter.ProgrammingError) as e:
                call(sql)
            assert str(e.value) in ("SQL text is empty",
                                    "the SQL text holds no statement (only blanks or comments): nothing was run")
            assert e.value.code == "bad_argument"


def test_reprs_never_show_the_password(cluster, table):
    with cluster.session() as s:
        texts = [repr(cluster), repr(s), repr(s.query("SELECT 1")), repr(cluster.status())]
    assert not any(PASSWORD in t for t in texts)
    assert "primary" in texts[0]


def test_an_unknown_option_is_named(dsn):
    with pytest.raises(walrouter.ProgrammingError, match="no_such_option"):
        walrouter.connect(dsn, no_such_option=1)


def test_a_bad_option_value_is_named(dsn):
    with pytest.raises(walrouter.ProgrammingError, match="read_budget_ms"):
        walrouter.connect(dsn, read_budget_ms="soon")


def test_options_take_python_values(dsn):
    with walrouter.connect(dsn, read_budget_ms=50, no_stmt_cache=True, max_lag_bytes=10**9,
                           token_key="k") as c, c.session() as s:
        assert s.query("SELECT $1::int", 7).scalar() == 7


def test_a_malformed_token_is_a_token_error(cluster):
    for token in ("garbage", "1.zz.-.0", "2.0.-.0", "2.1.a.-.0.0\x00junk"):
        with pytest.raises(walrouter.TokenError) as e:
            cluster.session(token=token)
        assert isinstance(e.value, walrouter.InterfaceError)
        assert e.value.code == "bad_token"


def test_an_empty_token_is_a_new_session_as_from_a_cleared_cookie(cluster):
    with cluster.session(token="") as s:
        assert s.query("SELECT 1").scalar() == 1


def test_a_token_signed_with_another_key_is_refused(dsn):
    with walrouter.connect(dsn, token_key="key-one") as a, a.session() as s:
        s.execute("SELECT 1")
        token = s.token
        with a.session(token=token) as same:  # the same key accepts it
            assert same.need == s.need
    with walrouter.connect(dsn, token_key="key-two") as b:
        with pytest.raises(walrouter.TokenError):
            b.session(token=token)
        with b.session() as t, pytest.raises(walrouter.TokenError):
            t.require(token)


def test_parameters_of_unsupported_types_are_refused(cluster):
    with cluster.session() as s:
        with pytest.raises(walrouter.ProgrammingError, match="object"):
            s.query("SELECT $1", object())
        with pytest.raises(walrouter.DataError, match="NUL"):
            s.query("SELECT $1::text", "a\x00b")


def test_a_closed_session_or_cluster_raises_interface_error(dsn):
    c = walrouter.connect(dsn)
    s = c.session()
    s.close()
    s.close()  # idempotent
    with pytest.raises(walrouter.InterfaceError):
        s.query("SELECT 1")
    c.close()
    c.close()
    with pytest.raises(walrouter.InterfaceError):
        c.session()
    assert "closed" in repr(c) and "closed" in repr(s)


def test_errors_pickle_with_their_details(cluster):
    with cluster.session() as s, pytest.raises(walrouter.ProgrammingError) as e:
        s.query("SELECT * FROM wr_no_such_table")
    copy = pickle.loads(pickle.dumps(e.value))
    assert type(copy) is walrouter.ProgrammingError
    assert (copy.sqlstate, copy.node, copy.code, str(copy)) == (e.value.sqlstate, e.value.node,
                                                                 e.value.code, str(e.value))


def test_a_connection_lost_during_a_write_is_an_unknown_outcome(cluster, names):
    with cluster.session() as s:
        with pytest.raises(walrouter.UnknownOutcomeError) as e:
            s.execute("SELECT pg_terminate_backend(pg_backend_pid())")  # the write's backend dies
        assert e.value.node == names[PRIMARY] and e.value.code == "unknown_outcome"
        assert s.query("SELECT 1", primary=True).scalar() == 1  # the session goes on


def test_a_connection_lost_inside_a_transaction_ends_it(cluster):
    with cluster.session() as s:
        with pytest.raises(walrouter.OperationalError):
            with s.transaction():
                s.query("SELECT pg_terminate_backend(pg_backend_pid())")
        assert not s.in_transaction
        assert s.query("SELECT 1").scalar() == 1


def test_new_exception_classes_are_operational_errors():
    assert issubclass(walrouter.QueryTimeoutError, walrouter.OperationalError)
    assert issubclass(walrouter.QueryInterruptedError, walrouter.OperationalError)
    assert walrouter.QueryTimeoutError.__module__ == "walrouter"


def test_sql_with_a_nul_character_is_refused_and_nothing_runs(cluster, table):
    with cluster.session() as s:
        s.execute(f"INSERT INTO {table} (id, v) VALUES (1, 'before')")
        sql = f"UPDATE {table} SET v = 'x' WHERE id = 1\x00 AND false"  # cut at the NUL, it would update
        for call in (s.execute, s.write, s.query, lambda q: s.query(q, primary=True)):
            with pytest.raises(walrouter.ProgrammingError, match="NUL") as e:
                call(sql)
            assert e.value.code == "bad_argument"
        with pytest.raises(walrouter.DataError, match="NUL"):
            s.execute(f"UPDATE {table} SET v = $1 WHERE id = 1", "x\x00y")
        assert s.query(f"SELECT v FROM {table} WHERE id = 1", primary=True).scalar() == "before"
        assert not s.in_transaction
        with pytest.raises(TypeError):
            s.execute(b"SELECT 1")


def test_a_dsn_or_option_value_with_a_nul_character_is_refused(dsn):
    with pytest.raises(walrouter.ProgrammingError, match="NUL"):
        walrouter.connect(dsn + "\x00junk")
    with pytest.raises(walrouter.ProgrammingError, match="token_key"):
        walrouter.connect(dsn, token_key="key\x00rest")


def test_a_token_with_a_nul_character_is_a_token_error_and_changes_nothing(cluster):
    with cluster.session() as w:
        w.execute("SELECT 1")
        token = w.token
    with cluster.session() as s:
        for bad in (token + "\x00junk", "\x00" + token):
            with pytest.raises(walrouter.TokenError, match="NUL"):
                s.resume(bad)
            with pytest.raises(walrouter.TokenError, match="NUL"):
                s.require(bad)
        assert s.need == "0/0"


@pytest.mark.parametrize("sql", ["BEGIN", "begin isolation level serializable", "  -- comment\nCOMMIT",
                                 "ROLLBACK", "START TRANSACTION", "END", "ABORT"])
def test_transaction_statements_are_refused_and_point_to_transaction(cluster, sql):
    with cluster.session() as s:
        for call in (s.execute, s.query, s.write):
            with pytest.raises(walrouter.ProgrammingError) as e:
                call(sql)
            assert e.value.code == "bad_argument"
            assert "transaction()" in str(e.value) and "begin()" in str(e.value)
        assert not s.in_transaction
        with s.transaction():  # the way the message names works
            assert s.execute("SELECT 1") == 1


def test_options_added_in_0_2_pass_through_by_name(dsn, table):
    with walrouter.connect(dsn, statement_timeout_ms=5000, pool_max=4, pool_size=2, nearest=True,
                           no_refresher=True, max_lag_bytes="none", max_lag_ms="none") as c, c.session() as s:
        s.execute(f"INSERT INTO {table} (v) VALUES ('a')")
        assert s.query(f"SELECT count(*) FROM {table}").scalar() == 1
    with walrouter.connect(dsn, max_lag_bytes=None, max_lag_ms=None, nearest=False, no_refresher="off") as c:
        assert c.session().query("SELECT 1").scalar() == 1


@pytest.mark.parametrize("option, value", [("statement_timeout_ms", "soon"), ("pool_max", -1),
                                           ("nearest", "closest"), ("no_refresher", 2),
                                           ("max_lag_ms", "never"), ("max_lag_bytes", float("inf"))])
def test_a_bad_value_of_a_new_option_is_named(dsn, option, value):
    with pytest.raises(walrouter.ProgrammingError, match=option):
        walrouter.connect(dsn, **{option: value})


def test_node_status_has_timeline_fencing_and_round_trip(cluster):
    for n in cluster.status():
        assert n.timeline is None or n.timeline >= 1
        assert n.fenced is False
        assert n.rtt_ms is None or n.rtt_ms >= 0
    assert cluster.status()[PRIMARY].timeline >= 1
