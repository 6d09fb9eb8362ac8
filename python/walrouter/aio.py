"""walrouter.aio: the asyncio API, with the semantics of the sync one.

    import walrouter.aio

    cluster = await walrouter.aio.connect("postgresql://app:pw@db1,db2,db3/app")
    async with cluster.session(token=cookie) as s:
        await s.execute("INSERT INTO notes (body) VALUES ($1)", "hello")
        rows = await s.query("SELECT body FROM notes")   # sees the insert
        async with s.transaction():
            ...
        async with s.stream("SELECT * FROM big") as rows:
            async for row in rows:
                ...
        cookie = s.token

Every statement runs on the event loop's thread through the async C API
(``wr_async_*``): the loop waits on the connection's socket with
``add_reader``/``add_writer`` and on the statement's deadline with
``call_at``; no thread is used per call, and a frozen or silent node never
blocks the loop. Cancelling the task (``task.cancel()``,
``asyncio.wait_for``, ``asyncio.timeout``) sends the server a cancel request
and waits (at most about a second) for its answer, so the connection comes
back clean; a second cancel abandons the statement at once (its connection
is closed, and a write then counts as an unknown outcome).

Opening and closing a cluster, ``status()``, ``refresh()``,
``status_json()`` and ``metrics()`` are one-off management calls that may
connect or probe: they run in a worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Generator, List, Optional, Tuple

from . import _core
from .adapt import adapt_params
from .cluster import Cluster, Event, NodeStatus
from .cluster import connect as _connect
from .errors import Error, InterfaceError, ProgrammingError, _error
from .result import Result, Row
from .session import MAX_PARAMS, Session, _hint, _too_many

if TYPE_CHECKING:
    from ._core import AsyncPtr, Params, ResultPtr
    from ._handles import SessionHandle

__all__ = ["AsyncCluster", "AsyncSession", "AsyncStream", "connect"]

_READ = _core.WR_PY_WAIT_READ
_WRITE = _core.WR_PY_WAIT_WRITE
_QUERY = _core.WR_PY_ASYNC_QUERY
_EXEC = _core.WR_PY_ASYNC_EXEC
_BEGIN = _core.WR_PY_ASYNC_BEGIN
_COMMIT = _core.WR_PY_ASYNC_COMMIT
_ROLLBACK = _core.WR_PY_ASYNC_ROLLBACK

_CURSOR = "wr_aio_stream"


async def connect(dsn: str, **options: Any) -> "AsyncCluster":
    """Opens a cluster as ``walrouter.connect`` does (same DSN, options and
    errors), in a worker thread so that the loop goes on meanwhile."""
    return AsyncCluster(await asyncio.to_thread(_connect, dsn, **options))


def _check_sql(sql: object) -> None:
    if not isinstance(sql, str):
        raise TypeError(f"SQL text must be str, not {type(sql).__name__}")
    if "\x00" in sql:
        raise ProgrammingError("the SQL text contains a NUL character (\\x00), which PostgreSQL cannot take: "
                               "nothing was run", code="bad_argument")


# ---- one operation, driven by the loop ---------------------------------------------


class _Op:
    """One ``wr_async`` operation: each wakeup (the socket ready, or the
    timer) advances it once and registers what it waits for next. The
    registrations are removed before every advance, which may close the
    socket (a new one may then get the same number)."""

    __slots__ = ("_loop", "_h", "_ptr", "_fut", "_done", "_fd", "_events", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, h: "SessionHandle", ptr: "AsyncPtr") -> None:
        self._loop = loop
        self._h = h                      # the session's handle (its lock guards every C call)
        self._ptr: Optional["AsyncPtr"] = ptr  # the C operation; None once freed
        self._fut: "asyncio.Future[None]" = loop.create_future()
        self._done = False
        self._fd = -1
        self._events = 0
        self._timer: Optional[asyncio.TimerHandle] = None

    def _unwatch(self) -> None:
        fd = self._fd
        if fd >= 0:
            if self._events & _READ:
                self._loop.remove_reader(fd)
            if self._events & _WRITE:
                self._loop.remove_writer(fd)
            self._fd = -1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def step(self, revents: int) -> None:
        """Advances the operation with what became ready (0: the timer)."""
        self._unwatch()
        if self._done:
            return
        h = self._h
        with h.lock:
            if self._ptr is None or h.ptr is None:  # abandoned, or the session is gone
                wait = None
            else:
                wait = _core.wr_py_async_step(self._ptr, revents)
        if wait is None:
            self._done = True
            if not self._fut.done():
                self._fut.set_result(None)
            return
        fd, events, wake = wait
        loop = self._loop
        try:
            if fd >= 0 and events:
                self._fd, self._events = fd, events
                if events & _READ:
                    loop.add_reader(fd, self.step, _READ)
                if events & _WRITE:
                    loop.add_writer(fd, self.step, _WRITE)
            self._timer = loop.call_at(wake, self.step, 0)
        except BaseException as e:  # the loop refused the fd: the awaiting task gets the error
            self.abandon()
            if not self._fut.done():
                self._fut.set_exception(e)

    def wait(self) -> "asyncio.Future[None]":
        """A future that completes once the operation is done."""
        if self._fut.cancelled():  # the task awaiting it was canceled
            self._fut = self._loop.create_future()
            if self._done:
                self._fut.set_result(None)
        return self._fut

    def cancel(self) -> None:
        """Sends the cancel request (for a statement in flight) and advances."""
        if self._done:
            return
        with self._h.lock:
            if self._ptr is not None and self._h.ptr is not None:
                _core.wr_py_async_cancel(self._ptr)
        self.step(0)

    def finish(self) -> Tuple[Optional[Error], Optional["ResultPtr"]]:
        """Once done: (the error or None, the C result or None); frees the
        operation."""
        h = self._h
        with h.lock:
            ptr, self._ptr = self._ptr, None
            if ptr is None or h.ptr is None:
                return h.closed_error(), None
            st, r = _core.wr_py_async_finish(ptr)
            return (_error(st, h) if st else None), r

    def abandon(self) -> None:
        """Frees the operation, still running or not: its connection is
        closed (a write then counts as an unknown outcome)."""
        self._unwatch()
        self._done = True
        with self._h.lock:
            ptr, self._ptr = self._ptr, None
            if ptr is not None and self._h.ptr is not None:
                _core.wr_py_async_abandon(ptr)

    def __del__(self) -> None:
        # Collected unfinished (its loop was dropped): free it if the session
        # is free now, else leave it (never wait here: the collection may run
        # on the thread that holds the lock).
        if self._ptr is None:
            return
        h = self._h
        if h.lock.acquire(blocking=False):
            try:
                ptr, self._ptr = self._ptr, None
                if h.ptr is not None:
                    _core.wr_py_async_abandon(ptr)
            finally:
                h.lock.release()


# ---- sessions ----------------------------------------------------------------------


class AsyncSession:
    """One user's or one request's view of the cluster, as ``Session``, with
    coroutine methods. Use it from one task at a time (calls from several
    tasks are serialized). Get one with ``cluster.session(token=...)`` and
    close it with ``await s.close()`` or ``async with``; an open
    transaction is rolled back."""

    __slots__ = ("_cluster", "_s", "_h", "_lock", "_stream", "__weakref__")

    def __init__(self, cluster: "AsyncCluster", session: Session) -> None:
        self._cluster = cluster
        self._s = session                 # the sync session: its token, need, lifetime
        self._h: "SessionHandle" = session._h  # its handle: the C session and its lock
        self._lock = asyncio.Lock()
        self._stream: Optional["weakref.ref[AsyncStream]"] = None

    # ---- running one operation ---------------------------------------------------

    async def _run(self, kind: int, sql: str, params: "Params", flags: int) -> Optional["ResultPtr"]:
        """Runs one operation; its C result (or None). The caller holds _lock."""
        if self._stream is not None and kind not in (_COMMIT, _ROLLBACK):
            await self._end_abandoned_stream()
        h = self._h
        with h.lock:
            if h.ptr is None:
                raise h.closed_error()
            st, ptr = _core.wr_py_async_start(h.ptr, kind, sql, params, flags)
            err = _hint(_error(st, h), sql) if st or ptr is None else None
        if err is not None or ptr is None:
            h.cluster.deliver()
            raise err or InterfaceError("the operation could not start")
        op = _Op(asyncio.get_running_loop(), h, ptr)
        op.step(0)
        try:
            await op.wait()
        except asyncio.CancelledError:
            await self._cancel(op)
            raise
        except BaseException:
            op.abandon()
            raise
        err, r = op.finish()
        h.cluster.deliver()
        if err is not None:
            raise _hint(err, sql)
        return r

    @staticmethod
    async def _cancel(op: _Op) -> None:
        """The task awaiting op was canceled: cancel the statement on the
        server and wait until it is over (the connection then comes back
        clean); a second cancel abandons it."""
        op.cancel()
        try:
            await op.wait()
        except BaseException:
            op.abandon()
            raise
        _, r = op.finish()
        if r is not None:
            _core.wr_result_free(r)
        op._h.cluster.deliver()

    async def _call(self, kind: int, sql: str, params: Tuple[Any, ...], flags: int) -> Optional["ResultPtr"]:
        if type(sql) is not str or "\x00" in sql:
            _check_sql(sql)
        if len(params) > MAX_PARAMS:
            _too_many(params)
        p = adapt_params(params) if params else ()
        async with self._lock:
            return await self._run(kind, sql, p, flags)

    def _result(self, r: Optional["ResultPtr"]) -> Result[Row]:
        """The rows, converted as the sync session does; frees r."""
        if r is None:
            raise InterfaceError("the statement returned no result")
        return self._s._result(r)

    # ---- statements --------------------------------------------------------------

    async def query(self, sql: str, *params: Any, primary: bool = False) -> Result[Row]:
        """Runs a read with ``$1, $2, ...`` parameters and returns its rows
        (see ``Session.query``): on a replica fresh enough for this session,
        else on the primary; ``primary=True`` reads the primary this once."""
        r = await self._call(_QUERY, sql, params, _core.WR_PRIMARY if primary else 0)
        return self._result(r)

    async def execute(self, sql: str, *params: Any) -> int:
        """Runs a write on the primary; the number of rows it affected (see
        ``Session.execute``)."""
        r = await self._call(_EXEC, sql, params, 0)
        if r is None:
            return 0
        try:
            return int(_core.wr_result_affected(r))
        finally:
            _core.wr_result_free(r)

    async def write(self, sql: str, *params: Any) -> Result[Row]:
        """Like ``execute`` but returns the whole Result (``RETURNING``)."""
        return self._result(await self._call(_EXEC, sql, params, 0))

    # ---- transactions ------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def transaction(self, read_only: bool = False) -> AsyncIterator["AsyncSession"]:
        """``async with s.transaction():`` runs the block in one transaction
        on one node: committed at the end, rolled back if the block raises
        (or its task is canceled). ``read_only=True``: on one fresh replica."""
        await self.begin(read_only)
        try:
            yield self
        except BaseException:
            await self.rollback()
            raise
        await self.commit()

    async def begin(self, read_only: bool = False) -> None:
        """Opens a transaction (see ``transaction``)."""
        await self._call(_BEGIN, "", (), _core.WR_READ_ONLY if read_only else 0)

    async def commit(self) -> None:
        """Commits the open transaction (raises when the server rolled it
        back: SQLSTATE 25P02)."""
        await self._call(_COMMIT, "", (), 0)

    async def rollback(self) -> None:
        """Rolls back the open transaction, if any."""
        await self._call(_ROLLBACK, "", (), 0)

    @property
    def in_transaction(self) -> bool:
        """True while a transaction (or a stream) is open."""
        return self._s.in_transaction

    # ---- streaming ----------------------------------------------------------------

    def stream(self, sql: str, *params: Any, chunk: int = 1000, primary: bool = False) -> "AsyncStream":
        """A read whose rows arrive in chunks of ``chunk`` rows (see
        ``Session.stream``)::

            async with s.stream("SELECT id, body FROM notes") as rows:
                async for id, body in rows:
                    ...

        ``rows = await s.stream(...)`` opens it at once (and raises an
        error of the statement there); ``async for row in s.stream(...)``
        opens it at the first row. It is closed after its last row, by
        ``await rows.close()``, or at the end of the ``async with`` block.
        One collected unclosed (``break`` without ``async with``) is closed
        by the session's next call."""
        if type(sql) is not str or "\x00" in sql:
            _check_sql(sql)
        if len(params) > MAX_PARAMS:
            _too_many(params)
        if type(chunk) is not int or not 1 <= chunk <= 0x7FFFFFFF:
            raise ProgrammingError("stream: chunk must be an int from 1 to 2147483647", code="bad_argument")
        return AsyncStream(self, sql, adapt_params(params) if params else (), chunk, primary)

    async def _end_abandoned_stream(self) -> None:
        ref = self._stream
        if ref is not None and ref() is None:
            self._stream = None
            if self.in_transaction:
                with contextlib.suppress(Error):
                    await self._run(_COMMIT, "", (), 0)

    # ---- timeline and tokens (no I/O) -----------------------------------------------

    @property
    def token(self) -> str:
        """This session's timeline as cookie-safe text (see ``Session.token``)."""
        return self._s.token

    def resume(self, token: Optional[str]) -> None:
        """Replaces this session's timeline with the token's."""
        self._s.resume(token)

    def require(self, token: str) -> None:
        """Also sees everything the session behind `token` wrote or saw."""
        self._s.require(token)

    @property
    def need(self) -> str:
        """The WAL position ("X/Y") a replica must have replayed to serve
        this session's next read."""
        return self._s.need

    # ---- lifetime ----------------------------------------------------------------

    @property
    def cluster(self) -> "AsyncCluster":
        return self._cluster

    @property
    def closed(self) -> bool:
        return self._s.closed

    async def close(self) -> None:
        """Waits for a call in flight, rolls back an open transaction and
        frees the session. Idempotent."""
        if self._s.closed:
            return
        async with self._lock:
            if not self._s.closed and self.in_transaction:
                self._stream = None
                with contextlib.suppress(Error):
                    await self._run(_ROLLBACK, "", (), 0)
            self._s.close()

    async def __aenter__(self) -> "AsyncSession":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        if self._s.closed:
            return "<walrouter.aio.AsyncSession closed>"
        tx = " in transaction" if self.in_transaction else ""
        return f"<walrouter.aio.AsyncSession need={self.need}{tx}>"


class AsyncStream:
    """The rows of one read, fetched ``chunk`` rows per round trip, as an
    async iterator of tuples; also an async context manager and awaitable
    (which open it). It runs as ``Session.stream``: a read-only transaction
    on one replica fresh enough for the session (or on the primary), through
    a server-side cursor, so every chunk comes from one snapshot. Attributes
    from the first chunk: ``columns``, ``types``, ``node``, ``reason``."""

    __slots__ = ("_s", "_sql", "_params", "_chunk", "_primary", "_state", "_rows", "_i",
                 "columns", "types", "node", "reason", "__weakref__")

    def __init__(self, session: AsyncSession, sql: str, params: "Params", chunk: int,
                 primary: bool) -> None:
        self._s = session
        self._sql = sql
        self._params = params
        self._chunk = chunk
        self._primary = primary
        self._state = "new"               # "new", "open", "closed"
        self._rows: List[Row] = []
        self._i = 0
        self.columns: Tuple[str, ...] = ()
        self.types: Tuple[int, ...] = ()
        self.node: Optional[str] = None
        self.reason: Optional[str] = None

    async def _open(self) -> None:
        if self._state != "new":
            return
        s = self._s
        async with s._lock:
            if self._state != "new":
                return
            self._state = "closed"  # until opened
            if s._stream is not None:
                await s._end_abandoned_stream()
            if s.in_transaction:
                raise ProgrammingError("a transaction is open: stream before or after it",
                                       code=_core.wr_status_name(_core.WR_ERR_STATE))
            await s._run(_BEGIN, "", (), 0 if self._primary else _core.WR_READ_ONLY)
            try:
                await s._run(_QUERY, f"DECLARE {_CURSOR} NO SCROLL CURSOR FOR {self._sql}", self._params, 0)
            except BaseException:
                with contextlib.suppress(Error):
                    await s._run(_ROLLBACK, "", (), 0)
                raise
            self._state = "open"
            s._stream = weakref.ref(self)
        await self._fetch()
        self._i = 0

    async def _fetch(self) -> None:
        """Reads the next chunk into _rows; closes the stream after the last."""
        s = self._s
        try:
            async with s._lock:
                if self._state != "open":
                    self._rows = []
                    return
                r = await s._run(_QUERY, f"FETCH FORWARD {self._chunk} FROM {_CURSOR}", (), 0)
            res = s._result(r)
        except BaseException:
            await self._close()
            raise
        if self.node is None and res.rows:
            self.columns, self.types, self.node, self.reason = res.columns, res.types, res.node, res.reason
        self._rows = res.rows
        self._i = 0
        if not res.rows:
            await self._close()

    def __aiter__(self) -> "AsyncStream":
        return self

    async def __anext__(self) -> Row:
        if self._state == "new":
            await self._open()
        if self._i >= len(self._rows):
            if self._state != "open":
                raise StopAsyncIteration
            await self._fetch()
            if not self._rows:
                raise StopAsyncIteration
        row = self._rows[self._i]
        self._i += 1
        return row

    async def _close(self) -> None:
        s = self._s
        if self._state != "open":
            self._state = "closed"
            return
        self._state = "closed"
        async with s._lock:
            if s._stream is not None and s._stream() is self:
                s._stream = None
                if not s.closed and s.in_transaction:
                    with contextlib.suppress(Error):
                        await s._run(_COMMIT, "", (), 0)

    async def close(self) -> None:
        """Ends the stream's transaction; rows not read are dropped.
        Idempotent."""
        self._rows = []
        self._i = 0
        await self._close()

    aclose = close

    @property
    def closed(self) -> bool:
        return self._state == "closed"

    async def __aenter__(self) -> "AsyncStream":
        await self._open()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __await__(self) -> Generator[Any, None, "AsyncStream"]:
        yield from self._open().__await__()
        return self

    def __repr__(self) -> str:
        where = f" from {self.node}" if self.node else ""
        return f"<walrouter.aio.AsyncStream {self._state}{where}>"


# ---- the cluster -------------------------------------------------------------------


class AsyncCluster:
    """A cluster for asyncio code: ``session()`` gives ``AsyncSession``s.
    Wraps a ``walrouter.Cluster`` (``.sync``), whose pool, probes and
    counters it shares: sync and async code may use one cluster together.
    Get one with ``await walrouter.aio.connect(dsn, **options)`` or
    ``AsyncCluster(walrouter.connect(...))``; close it with ``await
    cluster.close()`` or ``async with``."""

    __slots__ = ("_c", "_sessions", "__weakref__")

    def __init__(self, cluster: Cluster) -> None:
        if not isinstance(cluster, Cluster):
            raise TypeError(f"AsyncCluster wraps a walrouter.Cluster, not {type(cluster).__name__}")
        self._c = cluster
        self._sessions: "weakref.WeakSet[AsyncSession]" = weakref.WeakSet()

    @property
    def sync(self) -> Cluster:
        """The ``walrouter.Cluster`` underneath."""
        return self._c

    def session(self, token: Optional[str] = None) -> AsyncSession:
        """A new session, resuming `token`'s timeline when given (see
        ``Cluster.session``). No I/O: use it with ``async with``."""
        s = AsyncSession(self, self._c.session(token=token))
        self._sessions.add(s)
        return s

    async def status(self) -> List[NodeStatus]:
        """Every node's status (see ``Cluster.status``)."""
        return await asyncio.to_thread(self._c.status)

    async def refresh(self) -> None:
        """Probes every node now."""
        await asyncio.to_thread(self._c.refresh)

    async def status_json(self) -> str:
        return await asyncio.to_thread(self._c.status_json)

    async def metrics(self) -> str:
        return await asyncio.to_thread(self._c.metrics)

    def events(self) -> List[Event]:
        """The node state changes noticed since the last call."""
        return self._c.events()

    def on_event(self, handler: Optional[Callable[[Event], None]]) -> None:
        """Calls ``handler(event)`` for every node state change, on the
        loop's thread after the statement that noticed it."""
        self._c.on_event(handler)

    @property
    def nodes(self) -> List[str]:
        return self._c.nodes

    @property
    def primary(self) -> Optional[str]:
        return self._c.primary

    @property
    def closed(self) -> bool:
        return self._c.closed

    async def close(self) -> None:
        """Closes every session (waiting for their calls in flight, rolling
        back open transactions), then the cluster. Idempotent."""
        sessions = list(self._sessions)
        if sessions:
            await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        await asyncio.to_thread(self._c.close)

    async def __aenter__(self) -> "AsyncCluster":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        return repr(self._c).replace("<walrouter.Cluster", "<walrouter.aio.AsyncCluster", 1)

