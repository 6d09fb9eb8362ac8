"""walrouter.dbapi: a PEP 249 (DB-API 2.0) connection and cursor over a
walrouter session, for code and frameworks that expect one (SQLAlchemy:
``postgresql+walrouter://``, see walrouter.sqlalchemy).

    from walrouter import dbapi

    conn = dbapi.connect("postgresql://app:pw@db1,db2,db3/app", autocommit=True)
    cur = conn.cursor()
    cur.execute("INSERT INTO notes (body) VALUES (%s)", ("hello",))   # the primary
    cur.execute("SELECT body FROM notes WHERE id = %(id)s", {"id": 1})  # a fresh replica
    print(cur.fetchall(), cur.node, cur.reason)

paramstyle is ``pyformat``: ``%s`` (parameters as a sequence) or
``%(name)s`` (a mapping), converted to PostgreSQL's ``$1, $2, ...``; ``%%``
is a percent sign. Quoted text (``'...'``, ``E'...'``, ``"..."``,
``$tag$...$tag$``) and comments are never scanned for placeholders (only
``%%`` there still means ``%``, as SQLAlchemy writes it). With parameters
None the text is sent as it is.

Transactions: outside autocommit (the default, as PEP 249 asks), the first
statement opens a transaction that ``commit()`` or ``rollback()`` ends: on
the primary, or, with ``conn.read_only = True``, on one replica fresh
enough for the session (REPEATABLE READ, READ ONLY). In autocommit mode
each statement is routed on its own: reads (SELECT, WITH, VALUES, TABLE,
SHOW, EXPLAIN) to a fresh replica, the rest to the primary; a read that
turns out to write is moved to the primary by walrouter.

A connection is one walrouter session: it sees its own writes, and
``conn.token`` / ``connect(..., token=...)`` carry that across requests. A
connection made from a DSN uses a cluster shared by every connection made
in this process with the same DSN and options; pass a ``walrouter.Cluster``
to choose it yourself.
"""

from __future__ import annotations

import datetime as _dt
import re
import threading
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import (Any, Dict, FrozenSet, Iterator, List, Optional, Sequence, Tuple, Type, TypeVar,
                    Union)

from .cluster import Cluster, connect as _open_cluster
from .errors import (DatabaseError, DataError, Error, IntegrityError, InterfaceError, InternalError,
                     NotSupportedError, OperationalError, ProgrammingError, Warning)
from .result import Result
from .session import Session

__all__ = [
    "apilevel", "threadsafety", "paramstyle", "connect", "Connection", "Cursor",
    "Warning", "Error", "InterfaceError", "DatabaseError", "DataError", "OperationalError",
    "IntegrityError", "InternalError", "ProgrammingError", "NotSupportedError",
    "Date", "Time", "Timestamp", "DateFromTicks", "TimeFromTicks", "TimestampFromTicks", "Binary",
    "STRING", "BINARY", "NUMBER", "DATETIME", "ROWID",
]

apilevel = "2.0"
threadsafety = 1  # threads may share the module, not connections
paramstyle = "pyformat"

Row = Tuple[Any, ...]
Params = Union[Sequence[Any], Mapping[str, Any], None]

# ---- type objects and constructors -----------------------------------------------------


class _TypeObject:
    """A PEP 249 type object: equal to the type OIDs of its kind, as found in
    ``cursor.description[i][1]``."""

    def __init__(self, name: str, oids: FrozenSet[int]) -> None:
        self.name = name
        self.oids = oids

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _TypeObject):
            return self.oids == other.oids
        return other in self.oids

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self.oids)

    def __repr__(self) -> str:
        return f"<walrouter.dbapi type {self.name}>"


STRING = _TypeObject("STRING", frozenset({18, 19, 25, 1042, 1043}))  # char, name, text, bpchar, varchar
BINARY = _TypeObject("BINARY", frozenset({17}))  # bytea
NUMBER = _TypeObject("NUMBER", frozenset({20, 21, 23, 26, 700, 701, 790, 1700}))  # ints, oid, floats, money, numeric
DATETIME = _TypeObject("DATETIME", frozenset({1082, 1083, 1114, 1184, 1186, 1266}))  # date, time, timestamps, interval
ROWID = _TypeObject("ROWID", frozenset({26}))  # oid

Date = _dt.date
Time = _dt.time
Timestamp = _dt.datetime


def DateFromTicks(ticks: float) -> _dt.date:  # noqa: N802 - PEP 249's names
    return _dt.date(*time.localtime(ticks)[:3])


def TimeFromTicks(ticks: float) -> _dt.time:  # noqa: N802
    return _dt.time(*time.localtime(ticks)[3:6])


def TimestampFromTicks(ticks: float) -> _dt.datetime:  # noqa: N802
    return _dt.datetime(*time.localtime(ticks)[:6])


def Binary(data: Union[bytes, bytearray, memoryview, str]) -> bytes:  # noqa: N802
    return data.encode() if isinstance(data, str) else bytes(data)


# ---- pyformat -> $n -------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"%(?:\((?P<name>[^)]*)\))?s")
# Spans never scanned for placeholders: comments, and quoted text.
_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def _skip_quoted(sql: str, i: int) -> int:
    """If a comment or quoted text starts at sql[i], the index just past it;
    else i. An unterminated one runs to the end (the server reports it)."""
    c = sql[i]
    n = len(sql)
    if c == "-" and sql.startswith("--", i):
        j = sql.find("\n", i)
        return n if j < 0 else j + 1
    if c == "/" and sql.startswith("/*", i):
        depth, j = 1, i + 2
        while j < n and depth:
            if sql.startswith("/*", j):
                depth, j = depth + 1, j + 2
            elif sql.startswith("*/", j):
                depth, j = depth - 1, j + 2
            else:
                j += 1
        return j
    if c in "'\"":
        escapes = c == "'" and i > 0 and sql[i - 1] in "eE" and (i < 2 or not _ident_char(sql[i - 2]))
        j = i + 1
        while j < n:
            if escapes and sql[j] == "\\":
                j += 2
                continue
            if sql[j] == c:
                if j + 1 < n and sql[j + 1] == c:  # '' or "" inside
                    j += 2
                    continue
                return j + 1
            j += 1
        return n
    if c == "$" and (i == 0 or not _ident_char(sql[i - 1])):
        m = _DOLLAR.match(sql, i)
        if m:
            end = sql.find(m.group(0), m.end())
            return n if end < 0 else end + len(m.group(0))
    return i


def _ident_char(c: str) -> bool:
    return c.isalnum() or c in "_$"


@lru_cache(maxsize=512)
def convert(sql: str) -> Tuple[str, Tuple[str, ...], int]:
    """(SQL with $n placeholders, the names of %(name)s placeholders in $n
    order, the number of %s placeholders). Mixing both kinds is an error."""
    out: List[str] = []
    names: Dict[str, int] = {}
    positional = 0
    i = start = 0
    n = len(sql)
    while i < n:
        c = sql[i]
        if c in "-/'\"$":
            j = _skip_quoted(sql, i)
            if j != i:
                out.append(sql[start:i])
                out.append(sql[i:j].replace("%%", "%"))
                i = start = j
                continue
        elif c == "%":
            if sql.startswith("%%", i):
                out.append(sql[start:i + 1])
                i = start = i + 2
                continue
            m = _PLACEHOLDER.match(sql, i)
            if m:
                out.append(sql[start:i])
                name = m.group("name")
                if name is None:
                    positional += 1
                    out.append(f"${positional}")
                else:
                    if name not in names:
                        names[name] = len(names) + 1
                    out.append(f"${names[name]}")
                i = start = m.end()
                if positional and names:
                    raise ProgrammingError("the statement mixes %s and %(name)s placeholders: use one kind")
                continue
        i += 1
    out.append(sql[start:])
    return "".join(out), tuple(names), positional


def bind(sql: str, params: Params) -> Tuple[str, Tuple[Any, ...]]:
    """The $n SQL and its parameters in $n order."""
    if params is None:
        return sql, ()
    text, names, count = convert(sql)
    if not names and type(params) in (tuple, list):  # the common case first (no ABC checks)
        if len(params) != count:
            _count_mismatch(count, len(params))
        return text, tuple(params)
    if names:
        if not isinstance(params, Mapping):
            raise ProgrammingError(f"the statement uses %(name)s placeholders ({', '.join(names)}): "
                                   f"pass the parameters as a mapping, not {type(params).__name__}")
        missing = [k for k in names if k not in params]
        if missing:
            raise ProgrammingError(f"no value for the placeholder{'s' if len(missing) > 1 else ''} "
                                   + ", ".join(f"%({k})s" for k in missing))
        return text, tuple(params[k] for k in names)
    if isinstance(params, (str, bytes)) or not isinstance(params, Sequence):
        if isinstance(params, Mapping) and count == 0:
            return text, ()
        raise ProgrammingError(f"the parameters must be a sequence (a tuple or a list) for %s placeholders, "
                               f"not {type(params).__name__}")
    if len(params) != count:
        _count_mismatch(count, len(params))
    return text, tuple(params)


def _count_mismatch(count: int, given: int) -> None:
    raise ProgrammingError(f"the statement has {count} %s placeholder{'s' if count != 1 else ''} "
                           f"but {given} parameter{'s were' if given != 1 else ' was'} given")


_FIRST_WORD = re.compile(r"[\s(]*([A-Za-z]+)")
_READS = frozenset({"select", "with", "values", "table", "show", "explain"})


@lru_cache(maxsize=512)
def _is_read(sql: str) -> bool:
    """Whether autocommit runs the statement as a read (see the module)."""
    return _first_word(sql) in _READS


def _first_word(sql: str) -> str:
    i, n = 0, len(sql)
    while i < n:
        if sql[i].isspace() or sql[i] == "(":
            i += 1
            continue
        j = _skip_quoted(sql, i) if sql[i] in "-/" else i
        if j == i:
            break
        i = j
    m = _FIRST_WORD.match(sql, i)
    return m.group(1).lower() if m else ""


# ---- connection ---------------------------------------------------------------------------------

_shared: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], Cluster] = {}
_shared_lock = threading.Lock()


def _shared_cluster(dsn: str, options: Dict[str, Any]) -> Cluster:
    key = (dsn, tuple(sorted((k, repr(v)) for k, v in options.items())))
    with _shared_lock:
        c = _shared.get(key)
        if c is None or c.closed:
            c = _open_cluster(dsn, **options)
            _shared[key] = c
        return c


def connect(dsn_or_cluster: Union[str, Cluster], autocommit: bool = False, *, read_only: bool = False,
            token: Optional[str] = None, **options: Any) -> "Connection":
    """A PEP 249 connection: one walrouter session on the cluster given, or
    on the cluster this process shares for that DSN and options (see
    walrouter.connect for the options). ``token`` resumes a session's
    timeline (``conn.token`` of an earlier connection)."""
    if isinstance(dsn_or_cluster, Cluster):
        if options:
            raise ProgrammingError("options are given when the cluster is opened, not with a Cluster: "
                                   + ", ".join(sorted(options)))
        cluster = dsn_or_cluster
    elif isinstance(dsn_or_cluster, str):
        cluster = _shared_cluster(dsn_or_cluster, options)
    else:
        raise TypeError(f"dsn_or_cluster must be a DSN (str) or a walrouter.Cluster, "
                        f"not {type(dsn_or_cluster).__name__}")
    return Connection(cluster.session(token=token), autocommit=autocommit, read_only=read_only)


class Connection:
    """A PEP 249 connection over one walrouter session (see the module's
    documentation for transactions and routing)."""

    Warning = Warning
    Error = Error
    InterfaceError = InterfaceError
    DatabaseError = DatabaseError
    DataError = DataError
    OperationalError = OperationalError
    IntegrityError = IntegrityError
    InternalError = InternalError
    ProgrammingError = ProgrammingError
    NotSupportedError = NotSupportedError

    def __init__(self, session: Session, *, autocommit: bool = False, read_only: bool = False) -> None:
        self._session: Optional[Session] = session
        self._autocommit = bool(autocommit)
        self._read_only = bool(read_only)

    # ---- state --------------------------------------------------------------------------

    @property
    def session(self) -> Session:
        """The walrouter session under this connection."""
        if self._session is None or self._session.closed:
            raise InterfaceError("the connection is closed")
        return self._session

    @property
    def cluster(self) -> Cluster:
        return self.session.cluster

    @property
    def closed(self) -> bool:
        return self._session is None or self._session.closed

    @property
    def autocommit(self) -> bool:
        """True: each statement runs (and is routed) on its own. False (the
        default): statements run in a transaction that commit() ends."""
        return self._autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        self._autocommit = self._mode("autocommit", self._autocommit, value)

    @property
    def read_only(self) -> bool:
        """True: transactions run on one replica fresh enough for the session
        (REPEATABLE READ, READ ONLY) rather than on the primary."""
        return self._read_only

    @read_only.setter
    def read_only(self, value: bool) -> None:
        self._read_only = self._mode("read_only", self._read_only, value)

    def _mode(self, name: str, old: bool, value: object) -> bool:
        """The new value of a mode, which a transaction in progress keeps."""
        if bool(value) != old and self.session.in_transaction:
            raise ProgrammingError(f"cannot change {name} inside a transaction: commit() or rollback() first")
        return bool(value)

    @property
    def in_transaction(self) -> bool:
        return self.session.in_transaction

    @property
    def token(self) -> str:
        """The session's timeline as a cookie-safe text (see Session.token)."""
        return self.session.token

    def resume(self, token: Optional[str]) -> None:
        """Carries on the timeline of `token` (see Session.resume)."""
        self.session.resume(token)

    # ---- PEP 249 ----------------------------------------------------------------------------

    def cursor(self) -> "Cursor":
        self.session  # raises when closed
        return Cursor(self)

    def commit(self) -> None:
        """Commits the open transaction, if any (none in autocommit mode)."""
        s = self.session
        if s.in_transaction:
            s.commit()

    def rollback(self) -> None:
        """Rolls back the open transaction, if any."""
        s = self.session
        if s.in_transaction:
            s.rollback()

    def close(self) -> None:
        """Rolls back an open transaction and frees the session (the shared
        cluster stays open for other connections). Idempotent."""
        s, self._session = self._session, None
        if s is not None:
            s.close()

    def _begin_if_needed(self, s: Session) -> None:
        if not self._autocommit and not s.in_transaction:
            s.begin(read_only=self._read_only)

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], *exc: Any) -> None:
        """Commits (rolls back when the block raised), then closes."""
        try:
            if not self.closed:
                if exc_type is None:
                    self.commit()
                else:
                    self.rollback()
        finally:
            self.close()

    def __repr__(self) -> str:
        if self.closed:
            return "<walrouter.dbapi.Connection closed>"
        mode = "autocommit" if self._autocommit else "transactions"
        return f"<walrouter.dbapi.Connection {mode}{' read_only' if self._read_only else ''}>"


_T = TypeVar("_T")


class Cursor:
    """A PEP 249 cursor. Rows are tuples of Python values. Besides the PEP
    249 attributes: ``node`` and ``reason`` (where the last statement ran
    and why, as Result.node and Result.reason)."""

    def __init__(self, connection: Connection) -> None:
        self._conn: Optional[Connection] = connection
        self.arraysize = 1
        self._result: Optional[Result[Row]] = None
        self._rows: List[Row] = []
        self._pos = 0
        self._rowcount = -1
        self.lastrowid: Optional[int] = None  # PostgreSQL tables have no row ids: use RETURNING

    @property
    def connection(self) -> Connection:
        if self._conn is None:
            raise InterfaceError("the cursor is closed")
        return self._conn

    @property
    def closed(self) -> bool:
        return self._conn is None or self._conn.closed

    @property
    def description(self) -> Optional[List[Tuple[str, int, None, None, None, None, None]]]:
        """(name, type OID, None, None, None, None, None) per column of the
        last statement, or None when it returned no rows."""
        r = self._result
        if r is None or not r.columns:
            return None
        return [(name, oid, None, None, None, None, None) for name, oid in zip(r.columns, r.types)]

    @property
    def rowcount(self) -> int:
        """Rows returned by the last read, or affected by the last write;
        -1 before any statement and for statements that count nothing."""
        return self._rowcount

    @property
    def rownumber(self) -> Optional[int]:
        return self._pos if self._result is not None and self._result.columns else None

    @property
    def node(self) -> Optional[str]:
        return self._result.node if self._result is not None else None

    @property
    def reason(self) -> Optional[str]:
        return self._result.reason if self._result is not None else None

    def _open_session(self) -> Tuple[Connection, Session]:
        conn = self.connection
        if conn.closed:
            raise InterfaceError("the connection is closed")
        return conn, conn.session

    def execute(self, operation: str, parameters: Params = None) -> "Cursor":
        """Runs one statement (see the module's documentation for the
        placeholders, transactions and routing). Returns the cursor."""
        conn, s = self._open_session()
        if not isinstance(operation, str):
            raise TypeError(f"the SQL text must be str, not {type(operation).__name__}")
        sql, params = bind(operation, parameters)
        self._reset()
        conn._begin_if_needed(s)
        if _is_read(sql):
            r = s.query(sql, *params)
        else:
            r = s.write(sql, *params)
        self._set(r)
        return self

    def executemany(self, operation: str, seq_of_parameters: Sequence[Params]) -> "Cursor":
        """Runs the statement once per set of parameters; rowcount is the
        total. No rows are kept."""
        total = 0
        counted = True
        for params in seq_of_parameters:
            self.execute(operation, params)
            if self._rowcount < 0:
                counted = False
            total += max(self._rowcount, 0)
        self._reset()
        self._rowcount = total if counted else -1
        return self

    def callproc(self, procname: str, parameters: Sequence[Any] = ()) -> Sequence[Any]:
        """Calls a set-returning or scalar function as ``SELECT * FROM
        procname($1, ...)``; its rows are fetched as a query's. Returns the
        parameters unchanged (PostgreSQL functions have no OUT-only
        arguments here)."""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?", procname or ""):
            raise ProgrammingError(f"callproc: not a function name: {procname!r}")
        conn, s = self._open_session()
        self._reset()
        conn._begin_if_needed(s)
        marks = ", ".join(f"${i + 1}" for i in range(len(parameters)))
        self._set(s.query(f"SELECT * FROM {procname}({marks})", *parameters))
        return parameters

    def _reset(self) -> None:
        self._result = None
        self._rows = []
        self._pos = 0
        self._rowcount = -1

    def _set(self, r: "Result[Row]") -> None:
        self._result = r
        self._rows = r.rows
        self._pos = 0
        if r.columns:
            self._rowcount = len(r.rows)
        elif r.command.split(" ")[0] in ("INSERT", "UPDATE", "DELETE", "MERGE", "COPY", "SELECT", "MOVE",
                                          "FETCH"):
            self._rowcount = r.affected
        else:
            self._rowcount = -1

    def _need_rows(self) -> List[Row]:
        self.connection  # raises when closed
        if self._result is None:
            raise ProgrammingError("no statement was run: nothing to fetch")
        if not self._result.columns:
            raise ProgrammingError(f"the last statement ({self._result.command}) returned no rows to fetch")
        return self._rows

    def fetchone(self) -> Optional[Row]:
        rows = self._need_rows()
        if self._pos >= len(rows):
            return None
        self._pos += 1
        return rows[self._pos - 1]

    def fetchmany(self, size: Optional[int] = None) -> List[Row]:
        rows = self._need_rows()
        n = self.arraysize if size is None else size
        out = rows[self._pos:self._pos + n]
        self._pos += len(out)
        return out

    def fetchall(self) -> List[Row]:
        rows = self._need_rows()
        out = rows[self._pos:]
        self._pos = len(rows)
        return out

    def setinputsizes(self, sizes: Any) -> None:
        """Does nothing (PEP 249 allows it)."""

    def setoutputsize(self, size: Any, column: Optional[int] = None) -> None:
        """Does nothing (PEP 249 allows it)."""

    def close(self) -> None:
        """Drops the rows; the cursor can no longer be used. Idempotent."""
        self._conn = None
        self._reset()

    def __iter__(self) -> Iterator[Row]:
        return self

    def __next__(self) -> Row:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    def __enter__(self) -> "Cursor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<walrouter.dbapi.Cursor {'closed' if self.closed else 'open'}>"
