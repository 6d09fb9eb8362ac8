"""Stream: the rows of a large read, fetched chunk by chunk."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

from . import _core
from ._handles import SessionHandle
from .errors import DataError, InterfaceError, _error
from .result import Result, Row

if TYPE_CHECKING:
    from .session import Session

__all__ = ["Stream"]


class Stream:
    """The rows of one read, as an iterator of tuples that fetches them in
    chunks (``chunk`` rows per round trip), so memory stays flat however
    many rows the read returns. Get one with ``session.stream(sql, ...)``.

    It runs as a read-only transaction on one replica fresh enough for the
    session (or on the primary), through a server-side cursor: every chunk
    comes from one snapshot of one node. The session is in that transaction
    until the stream is closed: after its last row, by ``close()``, at the end
    of a ``with`` block, or when the stream is garbage-collected (e.g. after
    ``break`` in ``for row in s.stream(...)``).

    Attributes (from the first chunk, which is read at once; empty/None when
    the read returned no row): ``columns``, ``types``, ``node``, ``reason``.
    """

    __slots__ = ("_session", "_h", "_st", "_chunk", "_rows", "_i", "columns", "types", "node",
                 "reason", "_finalizer", "__weakref__")

    def __init__(self, session: "Session", handle: SessionHandle, st: Any, chunk: int) -> None:
        self._session = session  # keeps the session, and its cluster, alive
        self._h = handle
        self._st: Any = st       # the C stream; None once closed
        self._chunk = chunk
        self._rows: List[Row] = []
        self._i = 0
        self.columns: Tuple[str, ...] = ()
        self.types: Tuple[int, ...] = ()
        self.node: Optional[str] = None
        self.reason: Optional[str] = None
        self._finalizer = weakref.finalize(self, handle.abandon_stream, st)

    def _prefetch(self) -> None:
        """Reads the first chunk: its metadata, and an error of the
        statement, come with the call that opened the stream."""
        try:
            self._fetch()
        except StopIteration:
            pass
        self._i = 0

    def __iter__(self) -> "Stream":
        return self

    def __next__(self) -> Row:
        i = self._i
        rows = self._rows
        if i < len(rows):
            self._i = i + 1
            return rows[i]
        return self._fetch()

    def _fetch(self) -> Row:
        """The first row of the next chunk; closes the stream at the end."""
        st = self._st
        if st is None:
            raise StopIteration
        h = self._h
        try:
            with h.lock:
                if h.stream is not st:  # closed with its session
                    raise InterfaceError("the stream was closed with its session")
                status, r = _core.wr_stream_next(st, self._chunk)
                err = _error(status, h) if status else None
        except BaseException:  # KeyboardInterrupt, or a closed session: the stream is over
            self.close()
            raise
        if err is not None or r is None:
            self.close()
            if err is not None:
                raise err
            raise StopIteration
        try:
            raw = _core.wr_py_result(r)
        except UnicodeDecodeError as e:
            self.close()
            raise DataError(f"the server sent text that is not UTF-8: {e}") from e
        finally:
            _core.wr_result_free(r)
        res: Result[Row] = Result(raw, h.cluster.names)
        if self.node is None:
            self.columns, self.types, self.node, self.reason = res.columns, res.types, res.node, res.reason
        self._rows = res.rows
        self._i = 1
        return res.rows[0]

    def close(self) -> None:
        """Ends the stream's transaction; the rows not read are dropped.
        Idempotent."""
        self._finalizer.detach()
        st, self._st = self._st, None
        self._rows = []
        self._i = 0
        if st is None:
            return
        h = self._h
        with h.lock:
            if h.stream is st and h.ptr is not None:
                h.close_stream()
        h.cluster.deliver()

    @property
    def closed(self) -> bool:
        return self._st is None

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._st is None else "open"
        where = f" from {self.node}" if self.node else ""
        return f"<walrouter.Stream {state}{where}>"
