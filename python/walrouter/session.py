"""Session: one user's (or one request's) view of the cluster."""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Tuple, TypeVar

from . import _core
from ._handles import SessionHandle, finalize
from .adapt import adapt_params
from .errors import DataError, Error, ProgrammingError, _error
from .result import Result, Row, lsn_text
from .stream import Stream

if TYPE_CHECKING:
    from ._core import ResultPtr
    from .cluster import Cluster

__all__ = ["Session"]

_T = TypeVar("_T")


MAX_PARAMS = 65535  # PostgreSQL's limit on the parameters of one statement


def _too_many(params: Tuple[Any, ...]) -> None:
    if len(params) > MAX_PARAMS:
        raise ProgrammingError(f"{len(params)} parameters: PostgreSQL takes at most {MAX_PARAMS} in one statement "
                               "(send the values as one array parameter, e.g. WHERE id = ANY($1))",
                               code="bad_argument")


_OTHER_MARKS = re.compile(r"%s|%\([A-Za-z_][A-Za-z0-9_]*\)s|(?<![?&|@#<>-])\?(?![?&|-])")


def _hint(err: Exception, sql: str) -> Exception:
    """A syntax error or a parameter-count mismatch in SQL that holds %s,
    %(name)s or ? placeholders (other drivers' styles): the error, with a
    hint that walrouter's are $1, $2, ... (walrouter.dbapi takes %s)."""
    if isinstance(err, Error) and err.sqlstate in ("42601", "08P01") and _OTHER_MARKS.search(_unquoted(sql)):
        err.message = f"{err.message}; hint: walrouter's placeholders are $1, $2, ... (not %s or ?; " \
                      f"walrouter.dbapi takes %s and %(name)s)"
        err.args = (err.message,)
    return err


def _unquoted(sql: str) -> str:
    """The SQL without its quoted text and comments (where %s and ? are text)."""
    return re.sub(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", " ", sql, flags=re.S)


def _bad_sql(sql: object) -> None:
    """Raises for SQL text that cannot be sent: not a str (TypeError), or
    holding a NUL character (ProgrammingError; C would cut the text there,
    and "... WHERE id = 1\\0 AND false" would run as its prefix)."""
    if not isinstance(sql, str):
        raise TypeError(f"SQL text must be str, not {type(sql).__name__}")
    if "\x00" in sql:
        raise ProgrammingError("the SQL text contains a NUL character (\\x00), which PostgreSQL cannot take: "
                               "nothing was run", code="bad_argument")


def _affected(r: Any) -> int:
    """A write's affected row count; frees the C result."""
    try:
        return _core.wr_result_affected(r)
    finally:
        _core.wr_result_free(r)


class Session:
    """One user's or one request's view of the cluster: reads go to replicas
    fresh enough for what this session has written or seen, writes go to the
    primary. Cheap; use it from one thread at a time (calls from several
    threads are serialized). Get one with ``cluster.session()``; close it with
    ``close()`` or a ``with`` block (an open transaction is rolled back).

    The session keeps its cluster alive.
    """

    __slots__ = ("_h", "_cluster", "_finalizer", "__weakref__")

    def __init__(self, cluster: "Cluster", handle: SessionHandle) -> None:
        self._cluster = cluster
        self._h = handle
        self._finalizer = finalize(self, handle)

    # ---- statements -----------------------------------------------------

    def query(self, sql: str, *params: Any, primary: bool = False) -> Result[Row]:
        """Runs a read (``SELECT ...``) with ``$1, $2, ...`` parameters and
        returns its rows.

        It runs on a replica that has replayed everything this session must
        see, else (after a short bounded retry) on the primary; inside a
        transaction, on the transaction's node. ``primary=True`` reads from
        the primary this once. ``result.node`` and ``result.reason`` tell
        where it ran and why.
        """
        if type(sql) is not str or "\x00" in sql:
            _bad_sql(sql)
        if len(params) > MAX_PARAMS:
            _too_many(params)
        h = self._h
        p = adapt_params(params) if params else ()
        with h.lock:
            h.ready()
            st, r = _core.wr_query(h.ptr, sql, p, _core.WR_PRIMARY if primary else 0)
            err = _hint(_error(st, h), sql) if st else None
        return self._finish(err, r, self._result)

    def execute(self, sql: str, *params: Any) -> int:
        """Runs a write (INSERT/UPDATE/DELETE/DDL...) on the primary and
        returns the number of rows it affected. Every later read of this
        session (and of sessions resumed from its token) sees it.

        A write is re-sent only when it provably did not run; when the outcome
        cannot be known, ``UnknownOutcomeError`` is raised.
        """
        return self._exec(sql, params, _affected)

    def write(self, sql: str, *params: Any) -> Result[Row]:
        """Like ``execute`` but returns the whole Result, e.g. the rows of
        ``INSERT ... RETURNING id`` (``result.affected`` has the count)."""
        return self._exec(sql, params, self._result)

    def _exec(self, sql: str, params: Tuple[Any, ...], convert: Callable[["ResultPtr"], _T]) -> _T:
        if type(sql) is not str or "\x00" in sql:
            _bad_sql(sql)
        if len(params) > MAX_PARAMS:
            _too_many(params)
        h = self._h
        p = adapt_params(params) if params else ()
        with h.lock:
            h.ready()
            st, r = _core.wr_exec(h.ptr, sql, p)
            err = _hint(_error(st, h), sql) if st else None
        return self._finish(err, r, convert)

    def _finish(self, err: Optional[Exception], r: Any, convert: Callable[["ResultPtr"], _T]) -> _T:
        """Converts (and frees) the C result, hands pending events to the
        cluster's on_event handler, then raises the call's error if any. The
        result is freed first, so a handler that raises leaks nothing."""
        out = convert(r) if err is None else None
        self._h.cluster.deliver()
        if err is not None:
            raise err
        return out  # type: ignore[return-value]

    def _result(self, r: "ResultPtr") -> Result[Row]:
        try:
            raw = _core.wr_py_result(r)
        except UnicodeDecodeError as e:
            raise DataError(f"the server sent text that is not UTF-8: {e}") from e
        finally:
            _core.wr_result_free(r)
        return Result(raw, self._h.cluster.names)

    # ---- streaming ------------------------------------------------------------

    def stream(self, sql: str, *params: Any, chunk: int = 1000, primary: bool = False) -> Stream:
        """Runs a read whose rows arrive in chunks of ``chunk`` rows, so
        memory stays flat however many rows it returns; returns a ``Stream``,
        an iterator of row tuples that is also a context manager::

            with s.stream("SELECT id, body FROM notes WHERE at > $1", since) as rows:
                for id, body in rows:
                    ...

        It runs as a read-only transaction on one replica fresh enough for
        this session (``primary=True``: on the primary), through a cursor, so
        every chunk comes from one snapshot. The session stays in that
        transaction (its other calls run in it) until the stream is closed:
        after the last row, at the end of the ``with`` block, by ``close()``,
        or when the stream is garbage-collected (``break`` out of ``for row
        in s.stream(...)`` closes it). One stream at a time per session.
        The first chunk is read before this returns: errors in the statement
        are raised here, and ``columns``/``node`` are set.
        """
        if type(sql) is not str or "\x00" in sql:
            _bad_sql(sql)
        if type(chunk) is not int or not 1 <= chunk <= 0x7FFFFFFF:
            raise ProgrammingError("stream: chunk must be an int from 1 to 2147483647", code="bad_argument")
        h = self._h
        p = adapt_params(params) if params else ()
        with h.lock:
            h.ready()
            if h.stream is not None and not _core.wr_session_in_transaction(h.ptr):
                h.close_stream()  # its transaction was ended by commit() or rollback()
            st, ptr = _core.wr_stream_open(h.ptr, sql, p, _core.WR_PRIMARY if primary else 0)
            if st:
                err = _error(st, h)
            else:
                err = None
                h.stream = ptr
        if err is not None:
            h.cluster.deliver()
            raise err
        stream = Stream(self, h, ptr, chunk)
        stream._prefetch()
        return stream

    # ---- transactions -----------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, read_only: bool = False) -> Iterator["Session"]:
        """``with s.transaction():`` runs the block in one transaction on one
        node: committed at the end, rolled back if the block raises.

        A transaction runs on the primary; ``read_only=True`` runs it on one
        replica fresh enough for this session (REPEATABLE READ, READ ONLY),
        or on the primary if none is.
        """
        self.begin(read_only)
        try:
            yield self
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def begin(self, read_only: bool = False) -> None:
        """Opens a transaction (see ``transaction``)."""
        self._call(_core.wr_begin, _core.WR_READ_ONLY if read_only else 0)

    def commit(self) -> None:
        """Commits the open transaction. If an earlier statement in it failed,
        the server rolled it back and this raises (SQLSTATE 25P02)."""
        self._call(_core.wr_commit)

    def rollback(self) -> None:
        """Rolls back the open transaction, if any."""
        self._call(_core.wr_rollback)

    @property
    def in_transaction(self) -> bool:
        """True while a transaction is open."""
        return bool(self._call(_core.wr_session_in_transaction, check=False))

    # ---- timeline and tokens ---------------------------------------------

    @property
    def token(self) -> str:
        """This session's timeline as a compact, cookie-safe text: pass it to
        ``cluster.session(token=...)`` in the next request so that request
        sees everything this one wrote or saw."""
        token: str = self._call(_core.wr_session_token, check=False)
        return token

    def resume(self, token: Optional[str]) -> None:
        """Replaces this session's timeline with the one `token` carries (as
        ``cluster.session(token=...)`` does). Raises TokenError for a
        malformed, tampered or foreign token, TypeError for one that is not
        str; an expired one empties it. "" (a cleared cookie) and None are no
        token: the timeline is emptied."""
        self._call(_core.wr_session_resume, _token_text(token))

    def require(self, token: str) -> None:
        """Also sees everything the session behind `token` (another user, a
        background job...) wrote or saw. Raises TokenError for a malformed,
        tampered or foreign token, TypeError for one that is not str; an
        expired one (or "") is ignored."""
        text = _token_text(token)
        if text:
            self._call(_core.wr_session_require, text)

    @property
    def need(self) -> str:
        """The WAL position ("X/Y") a replica must have replayed to serve
        this session's next read."""
        return lsn_text(self._call(_core.wr_session_need, check=False))

    def _call(self, fn: Any, *args: Any, check: bool = True) -> Any:
        h = self._h
        with h.lock:
            h.ready()
            rc = fn(h.ptr, *args)
            err = _error(rc, h) if check and rc else None
        if check:
            h.cluster.deliver()
        if err is not None:
            raise err
        return rc

    # ---- lifetime -----------------------------------------------------------

    @property
    def cluster(self) -> "Cluster":
        return self._cluster

    @property
    def closed(self) -> bool:
        return self._h.ptr is None

    def close(self) -> None:
        """Frees the session (rolling back an open transaction). Idempotent."""
        self._finalizer()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        h = self._h
        if not h.lock.acquire(blocking=False):
            return "<walrouter.Session busy>"
        try:
            if h.ptr is None:
                return "<walrouter.Session closed>"
            need = lsn_text(_core.wr_session_need(h.ptr))
            tx = " in transaction" if _core.wr_session_in_transaction(h.ptr) else ""
        finally:
            h.lock.release()
        return f"<walrouter.Session need={need}{tx}>"


def _token_text(token: object, argument: str = "token") -> str:
    """The token as text for the C layer. None and "" (a cleared cookie) are
    no token. Any other type than str is a TypeError naming the argument
    (bytes too: decode them first), and a NUL character, which would cut the
    text short, is a TokenError."""
    from .errors import TokenError
    if token is None:
        return ""
    if not isinstance(token, str):
        hint = " (decode it first: token.decode())" if isinstance(token, (bytes, bytearray)) else ""
        raise TypeError(f"{argument} must be str or None, not {type(token).__name__}{hint}")
    if "\x00" in token:
        raise TokenError("invalid session token: it contains a NUL byte", code="bad_token")
    return token
