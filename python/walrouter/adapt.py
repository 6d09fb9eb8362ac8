"""Conversions between Python values and PostgreSQL's text format.

Parameters go to the server as text ($1..$n, types inferred by the server);
values come back as text and are converted by their column's type OID.
"""

from __future__ import annotations

import datetime as _dt
import json
import uuid
from decimal import Decimal
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .errors import DataError, ProgrammingError

# ---- parameters -------------------------------------------------------------


def _bytes(v: Any) -> str:
    return "\\x" + bytes(v).hex()


def _float(v: float) -> str:
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "Infinity" if v > 0 else "-Infinity"
    return repr(v)


def _str(v: str) -> str:
    if "\x00" in v:
        raise DataError("a text parameter contains a NUL character, which PostgreSQL text cannot hold")
    return v


def _timedelta(v: _dt.timedelta) -> str:
    return f"{v.days} days {v.seconds} seconds {v.microseconds} microseconds"


def _json(v: Any) -> str:
    return json.dumps(v)


_ADAPTERS: Dict[type, Callable[[Any], str]] = {
    str: _str,
    bool: lambda v: "true" if v else "false",
    int: int.__repr__,
    float: _float,
    Decimal: str,
    bytes: _bytes,
    bytearray: _bytes,
    memoryview: _bytes,
    _dt.datetime: _dt.datetime.isoformat,
    _dt.date: _dt.date.isoformat,
    _dt.time: _dt.time.isoformat,
    _dt.timedelta: _timedelta,
    uuid.UUID: str,
    dict: _json,
    list: _json,
}


def _adapter(t: type) -> Callable[[Any], str]:
    """The adapter for type t (or for its closest supported base class)."""
    for base in t.__mro__:
        f = _ADAPTERS.get(base)
        if f is not None:
            _ADAPTERS[t] = f  # remember subclasses (IntEnum, str subclasses...)
            return f
    hint = "; parameters go as separate arguments: query(sql, a, b)" if t is tuple else ""
    raise ProgrammingError(f"cannot pass a parameter of type {t.__qualname__!r} (use str, int, float, "
                           f"bool, Decimal, bytes, date/time, UUID, dict/list or None{hint})")


def adapt_params(params: Sequence[Any]) -> Tuple[Optional[str], ...]:
    """Python values -> the text (or None for SQL NULL) sent as $1..$n."""
    out: List[Optional[str]] = []
    for v in params:
        if v is None:
            out.append(None)
        elif type(v) is str:  # the common case first
            out.append(_str(v))
        else:
            out.append((_ADAPTERS.get(type(v)) or _adapter(type(v)))(v))
    return tuple(out)


# ---- values -------------------------------------------------------------------


def _bool(s: str) -> bool:
    return s == "t"


def _bytea(s: str) -> bytes:
    if s.startswith("\\x"):
        return bytes.fromhex(s[2:])
    # bytea_output = 'escape': \\ is a backslash, \nnn an octal byte.
    out = bytearray()
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c != "\\":
            out += c.encode()
            i += 1
        elif s[i + 1] == "\\":
            out.append(92)
            i += 2
        else:
            out.append(int(s[i + 1:i + 4], 8))
            i += 4
    return bytes(out)


def _iso(parse: Callable[[str], Any], lo: Any, hi: Any) -> Callable[[str], Any]:
    """A converter of ISO text by `parse`; PostgreSQL's 'infinity' and
    '-infinity' become hi and lo, and what Python cannot hold is an error."""
    def convert(s: str) -> Any:
        try:
            return parse(s)
        except ValueError:
            if s == "infinity":
                return hi
            if s == "-infinity":
                return lo
            raise DataError(f"cannot convert {s!r} to a Python date/time (years BC or beyond 9999)")
    return convert


_UTC = _dt.timezone.utc
_datetime = _iso(_dt.datetime.fromisoformat, _dt.datetime.min, _dt.datetime.max)
_datetime_tz = _iso(_dt.datetime.fromisoformat, _dt.datetime.min.replace(tzinfo=_UTC),
                    _dt.datetime.max.replace(tzinfo=_UTC))
_date = _iso(_dt.date.fromisoformat, _dt.date.min, _dt.date.max)


def _time(s: str) -> _dt.time:
    if s == "24:00:00":  # PostgreSQL allows it; Python's time does not
        return _dt.time.max
    return _dt.time.fromisoformat(s)


# Type OID -> converter from the text form. Absent: the text is kept as str.
CONVERTERS: Dict[int, Callable[[str], Any]] = {
    16: _bool,             # bool
    17: _bytea,            # bytea
    20: int, 21: int, 23: int, 26: int,  # int8, int2, int4, oid
    700: float, 701: float,  # float4, float8
    1700: Decimal,         # numeric
    114: json.loads, 3802: json.loads,  # json, jsonb
    1082: _date,           # date
    1083: _time, 1266: _time,  # time, timetz (aware)
    1114: _datetime,       # timestamp (naive)
    1184: _datetime_tz,    # timestamptz (aware)
    2950: uuid.UUID,       # uuid
}


def convert_rows(types: Sequence[int], rows: List[Any]) -> List[Any]:
    """Rows of text (None for NULL) -> rows of Python values, in place."""
    convs = [(i, CONVERTERS[t]) for i, t in enumerate(types) if t in CONVERTERS]
    if not convs or not rows:
        return rows
    try:
        if len(convs) == 1 and len(types) == 1:
            f = convs[0][1]
            for k, (v,) in enumerate(rows):
                if v is not None:
                    rows[k] = (f(v),)
            return rows
        for k, row in enumerate(rows):
            r = list(row)
            for i, f in convs:
                v = r[i]
                if v is not None:
                    r[i] = f(v)
            rows[k] = tuple(r)
    except (ValueError, ArithmeticError) as e:  # a value in a format we cannot read
        raise DataError(f"cannot convert a value returned by the server: {e}") from e
    return rows
