"""Values converted by column type, both ways, and the Result API."""

import datetime as dt
import math
import uuid
from decimal import Decimal

import pytest

import walrouter

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


def lsn(text):
    hi, lo = text.split("/")
    return int(hi, 16) << 32 | int(lo, 16)


@pytest.fixture
def s(cluster):
    with cluster.session() as session:
        yield session


@pytest.mark.parametrize("literal, expected", [
    ("1::int2", 1), ("(-2147483648)::int4", -2147483648), ("9223372036854775807::int8", 2**63 - 1),
    ("42::oid", 42), ("1.5::float4", 1.5), ("-2.25::float8", -2.25),
    ("'12345678901234567890.000000001'::numeric", Decimal("12345678901234567890.000000001")),
    ("'NaN'::numeric", Decimal("NaN")),
    ("true", True), ("false", False),
    ("'héllo ✓ 日本 🐘'::text", "héllo ✓ 日本 🐘"), ("'abc'::varchar(5)", "abc"), ("'ab'::char(3)", "ab "),
    ("'\\x00ff10'::bytea", b"\x00\xff\x10"), ("''::bytea", b""),
    ("'2024-02-29 13:14:15.123456'::timestamp", dt.datetime(2024, 2, 29, 13, 14, 15, 123456)),
    ("'2024-02-29 13:14:15+00'::timestamptz", dt.datetime(2024, 2, 29, 13, 14, 15, tzinfo=dt.timezone.utc)),
    ("'2024-02-29'::date", dt.date(2024, 2, 29)), ("'13:14:15.5'::time", dt.time(13, 14, 15, 500000)),
    ("'infinity'::timestamp", dt.datetime.max), ("'-infinity'::date", dt.date.min),
    ("'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")),
    ("'{\"a\": [1, 2.5, null, \"x\"]}'::json", {"a": [1, 2.5, None, "x"]}),
    ("'[true, {\"k\": \"v\"}]'::jsonb", [True, {"k": "v"}]),
    ("'1 day 02:00'::interval", "1 day 02:00:00"), ("ARRAY[1,2]", "{1,2}"), ("'0/16B3748'::pg_lsn", "0/16B3748"),
])
def test_values_convert_by_column_type(s, literal, expected):
    value = s.query(f"SELECT {literal} AS v").scalar()
    assert value == expected or (isinstance(expected, Decimal) and expected.is_nan() and value.is_nan())
    assert type(value) is type(expected)


@pytest.mark.parametrize("cast", ["int4", "text", "bytea", "bool", "numeric", "timestamptz", "uuid", "jsonb"])
def test_null_is_none_in_both_directions(s, cast):
    r = s.query(f"SELECT $1::{cast} AS v, $1::{cast} IS NULL AS isnull", None)
    assert r.rows == [(None, True)]


@pytest.mark.parametrize("value, cast", [
    (0, "int4"), (-(2**62), "int8"), (2**63 - 1, "int8"), (1.25, "float8"), (float("inf"), "float8"),
    (-float("inf"), "float8"), (Decimal("-0.000000000001"), "numeric"),
    (Decimal("98765432109876543210.5"), "numeric"), (True, "bool"), (False, "bool"),
    ("", "text"), ("héllo ✓ 日本 🐘 \t\n' \" \\", "text"), ("x" * 100_000, "text"),
    (bytes(range(256)), "bytea"), (b"", "bytea"), (bytearray(b"\x00\x01"), "bytea"),
    (dt.date(1999, 12, 31), "date"), (dt.time(23, 59, 59, 999999), "time"),
    (dt.datetime(2001, 2, 3, 4, 5, 6, 789), "timestamp"),
    (dt.datetime(2001, 2, 3, 4, 5, 6, tzinfo=IST), "timestamptz"),
    (uuid.UUID(int=12345), "uuid"), ({"k": ["v", 1, None, True]}, "jsonb"), ([1, "two", 3.0], "json"),
])
def test_parameters_round_trip(s, value, cast):
    got = s.query(f"SELECT $1::{cast}", value).scalar()
    if isinstance(value, (bytearray,)):
        value = bytes(value)
    assert got == value


def test_nan_round_trips(s):
    assert math.isnan(s.query("SELECT $1::float8", float("nan")).scalar())
    assert s.query("SELECT $1::numeric", Decimal("NaN")).scalar().is_nan()


def test_timestamptz_is_aware_in_any_session_time_zone(s):
    moment = dt.datetime(2020, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
    with s.transaction():
        s.execute("SET LOCAL TimeZone = 'Asia/Kolkata'")
        got = s.query("SELECT $1::timestamptz", moment).scalar()
    assert got == moment and got.utcoffset() == dt.timedelta(hours=5, minutes=30)


def test_bytea_in_escape_output_format(s):
    data = bytes(range(256))
    with s.transaction():
        s.execute("SET LOCAL bytea_output = 'escape'")
        assert s.query("SELECT $1::bytea", data).scalar() == data


def test_unicode_in_text_and_identifiers(s):
    r = s.query('SELECT $1::text AS "ключ ✓"', "значение 🐘")
    assert r.columns == ("ключ ✓",)
    assert r.dicts() == [{"ключ ✓": "значение 🐘"}]


def test_a_result_is_a_sequence_of_tuples(s):
    r = s.query("SELECT g AS n, g * 2 AS twice FROM generate_series(1, 3) g")
    assert len(r) == 3 and r[0] == (1, 2) and r[-1] == (3, 6) and r[1:] == [(2, 4), (3, 6)]
    assert list(r) == [(1, 2), (2, 4), (3, 6)]
    assert r.columns == ("n", "twice") and r.types == (23, 23)
    assert r.dicts()[1] == {"n": 2, "twice": 4}
    row = r.namedtuples()[2]
    assert (row.n, row.twice) == (3, 6)
    assert r.scalar() == 1
    assert (2, 4) in r
    assert "3 rows" in repr(r)
    assert r.node in s.cluster.nodes and r.reason


def test_an_empty_result_keeps_its_columns(s):
    r = s.query("SELECT 1 AS a, 'x' AS b WHERE false")
    assert len(r) == 0 and not r and r.columns == ("a", "b") and r.scalar() is None


def test_write_returns_rows_and_the_commit_position(s, table):
    r = s.write(f"INSERT INTO {table} (v) VALUES ($1), ($2) RETURNING id, v", "a", "b")
    assert [v for _, v in r] == ["a", "b"]
    assert r.affected == 2 and r.command == "INSERT 0 2" and r.reason == "write"
    assert lsn(s.need) >= lsn(r.lsn) > 0
    assert s.execute(f"UPDATE {table} SET v = 'c'") == 2
    assert s.execute(f"DELETE FROM {table} WHERE v = $1", "nothing") == 0


def test_pep249_constructors_are_accepted(s):
    assert s.query("SELECT $1::date", walrouter.Date(2020, 1, 2)).scalar() == dt.date(2020, 1, 2)
    assert s.query("SELECT $1::bytea", walrouter.Binary(b"\x01")).scalar() == b"\x01"


def test_int_subclasses_and_enums_are_passed_as_numbers(s):
    import enum

    class Color(enum.IntEnum):
        RED = 7

    assert s.query("SELECT $1::int", Color.RED).scalar() == 7
