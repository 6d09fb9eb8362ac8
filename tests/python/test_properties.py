"""Property tests (Hypothesis) of the Python glue's value conversion, both
ways, through the real cluster: any value of a supported type goes out as a
parameter and comes back equal; text holding a NUL is refused before
anything is sent; the token is never accepted with anything appended.

The Python package converts values in pure Python (walrouter/adapt.py), so
this takes the place of a libFuzzer target for it (tests/fuzz/README.md)."""

import datetime as dt
import math
import uuid
from decimal import Decimal

import pytest

import walrouter

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# A real database behind every example: few, but enough to find a bad case.
FEW = settings(max_examples=60, deadline=None, database=None,  # no example files left behind
               suppress_health_check=[HealthCheck.function_scoped_fixture])

TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=200)
INT8 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
# Years PostgreSQL and Python both hold.
DATETIMES = st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59))
# dict and list go as JSON; a str goes as text, whatever it holds (top level).
SCALAR = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | TEXT
NESTED = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                      max_leaves=12)
JSON = st.lists(NESTED, max_size=4) | st.dictionaries(TEXT, NESTED, max_size=4)


@pytest.fixture(scope="module")
def own(dsn):
    cluster = walrouter.connect(dsn)
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def s(own):
    session = own.session()
    yield session
    session.close()


def back(s, cast, value):
    return s.query(f"SELECT $1::{cast}", value).scalar()


@FEW
@given(TEXT)
def test_any_text_without_nul_round_trips(s, value):
    assert back(s, "text", value) == value


@FEW
@given(TEXT, st.integers(min_value=0, max_value=200))
def test_text_holding_a_nul_is_refused_before_anything_is_sent(s, value, at):
    bad = value[:at] + "\x00" + value[at:]
    with pytest.raises(walrouter.DataError, match="NUL"):
        s.query("SELECT $1::text", bad)
    assert s.query("SELECT 1").scalar() == 1  # the session goes on


@FEW
@given(INT8)
def test_any_int8_round_trips(s, value):
    got = back(s, "int8", value)
    assert got == value and type(got) is int


@FEW
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_any_float8_round_trips(s, value):
    got = back(s, "float8", value)
    assert (math.isnan(got) and math.isnan(value)) or got == value


@FEW
@given(st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(lambda d: abs(d.adjusted()) < 1000))
def test_any_finite_decimal_round_trips_as_numeric(s, value):
    assert back(s, "numeric", value) == value


@FEW
@given(st.binary(max_size=300))
def test_any_bytes_round_trip_as_bytea(s, value):
    assert back(s, "bytea", value) == value


@FEW
@given(DATETIMES)
def test_any_timestamp_round_trips(s, value):
    assert back(s, "timestamp", value) == value


@FEW
@given(DATETIMES, st.integers(min_value=-14 * 60, max_value=14 * 60))
def test_any_aware_timestamp_is_the_same_moment_as_timestamptz(s, value, offset_min):
    aware = value.replace(tzinfo=dt.timezone(dt.timedelta(minutes=offset_min)))
    try:
        aware.astimezone(dt.timezone.utc)
    except OverflowError:
        return  # outside what Python itself can hold in UTC
    got = back(s, "timestamptz", aware)
    assert got == aware and got.tzinfo is not None


@FEW
@given(st.dates())
def test_any_date_round_trips(s, value):
    assert back(s, "date", value) == value


@FEW
@given(st.uuids())
def test_any_uuid_round_trips(s, value):
    got = back(s, "uuid", value)
    assert got == value and isinstance(got, uuid.UUID)


@FEW
@given(JSON)
def test_any_json_value_round_trips_as_jsonb(s, value):
    assert back(s, "jsonb", value) == value


@FEW
@given(st.text(max_size=40).filter(bool))
def test_a_token_with_anything_appended_is_refused(own, s, tail):
    s.execute("SELECT 1")
    with pytest.raises(walrouter.TokenError):
        own.session(token=s.token + tail)
