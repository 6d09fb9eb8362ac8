"""Cluster: the primary and its replicas, opened once and shared by threads."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import _core
from ._handles import ClusterHandle, SessionHandle, finalize
from .errors import InterfaceError, OperationalError, ProgrammingError, _check
from .result import lsn_text
from .session import Session, _token_text

__all__ = ["Cluster", "Event", "NodeStatus", "connect"]

_ROLES = {_core.WR_ROLE_UNKNOWN: "unknown", _core.WR_ROLE_PRIMARY: "primary",
          _core.WR_ROLE_REPLICA: "replica"}


@dataclass(frozen=True)
class NodeStatus:
    """A snapshot of one node, from ``cluster.status()``."""

    name: str                     # "host:port", as in Result.node
    host: str
    port: int
    role: str                     # "primary", "replica", "unknown"
    state: str                    # "up", "streaming", "catching_up", "lagging", "down", "unknown"
    lag_bytes: Optional[int]      # WAL not yet replayed; None when unknown
    lag_seconds: Optional[float]  # replay delay; None when unknown
    replay_lsn: str               # replica: replay position; primary: insert position
    replay_rate: Optional[float]  # bytes/s while catching up; None when unknown
    last_check: Optional[_dt.datetime]  # last probe (UTC); None: never
    conns_in_use: int
    conns_idle: int
    last_error: Optional[str]
    served: Dict[str, int] = field(default_factory=dict)  # statements per reason name
    errors: int = 0
    timeline: Optional[int] = None  # the node's timeline; None when unknown
    fenced: bool = False            # claims primary on an older timeline, or cannot be
                                    # ordered with another claimant: no reads, no writes
    rtt_ms: Optional[float] = None  # smoothed probe round trip; None when unknown


@dataclass(frozen=True)
class Event:
    """A node changed state, e.g. "streaming" -> "lagging", or -> "down"."""

    node: str        # "host:port"
    from_state: str  # "unknown", "up", "streaming", "catching_up", "lagging", "down"
    to_state: str
    at: _dt.datetime  # when it was noticed (UTC)

    @classmethod
    def from_raw(cls, raw: Tuple[int, str, str, int], names: Tuple[str, ...]) -> "Event":
        i, frm, to, ms = raw
        return cls(names[i] if 0 <= i < len(names) else str(i), frm, to,
                   _dt.datetime.fromtimestamp(ms / 1000, _dt.timezone.utc))


def _node_status(name: str, d: Dict[str, Any]) -> NodeStatus:
    ms = d["last_check_unix_ms"]
    return NodeStatus(
        name=name, host=d["host"], port=d["port"], role=_ROLES.get(d["role"], "unknown"),
        state=d["state"],
        lag_bytes=d["lag_bytes"] if d["lag_bytes"] >= 0 else None,
        lag_seconds=d["lag_seconds"] if d["lag_seconds"] >= 0 else None,
        replay_lsn=lsn_text(d["replay_lsn"]),
        replay_rate=d["replay_rate"] if d["replay_rate"] >= 0 else None,
        last_check=_dt.datetime.fromtimestamp(ms / 1000, _dt.timezone.utc) if ms else None,
        conns_in_use=d["conns_in_use"], conns_idle=d["conns_idle"],
        last_error=d["last_error"] or None, served=d["served"], errors=d["errors"],
        timeline=d["timeline"] or None, fenced=bool(d["fenced"]),
        rtt_ms=d["rtt_ms"] if d["rtt_ms"] >= 0 else None)


class Cluster:
    """A PostgreSQL primary and its streaming replicas, used as one database.

    Thread-safe: open one per process (``walrouter.connect``) and share it.
    Holds a small pool of idle connections per node; ``close()`` (or leaving
    a ``with`` block, or garbage collection) closes them and every session
    still open on it.
    """

    __slots__ = ("_h", "_finalizer", "__weakref__")

    def __init__(self, handle: ClusterHandle) -> None:
        self._h = handle
        self._finalizer = finalize(self, handle)

    def session(self, token: Optional[str] = None) -> Session:
        """A new session; with `token` (from ``session.token``, e.g. carried in
        a cookie), it resumes that session's timeline, so it sees everything
        that session wrote or saw. None and "" (a cleared cookie) are no
        token. Raises TokenError for a malformed, tampered or foreign token
        and TypeError for a token that is not str; an expired token gives a
        fresh session."""
        if token is not None and not isinstance(token, str):
            _token_text(token)  # raises TypeError, naming the argument
        h = self._h
        ptr = h.acquire()
        try:
            sptr = _core.wr_session_new(ptr)
            if sptr is None:
                raise OperationalError("out of memory")
            sh = SessionHandle(sptr, h)
        finally:
            h.release()
        s = Session(self, sh)
        if token:
            try:
                s.resume(token)
            except BaseException:
                s.close()
                raise
        return s

    def status(self) -> List[NodeStatus]:
        """Every node's role, state, lag, pool and counters (refreshed first
        when the last probe is older than refresh_interval_ms)."""
        h = self._h
        ptr = h.acquire()
        try:
            out = []
            for i, name in enumerate(h.names):
                d = _core.wr_py_node_status(ptr, i)
                if d is not None:
                    out.append(_node_status(name, d))
            return out
        finally:
            h.release()

    def refresh(self) -> None:
        """Probes every node now (roles, positions, lag)."""
        h = self._h
        ptr = h.acquire()
        try:
            st = _core.wr_cluster_refresh(ptr)
            if st:
                _check(st, h)
        finally:
            h.release()
        h.deliver()

    def status_json(self) -> str:
        """Every node's status as a JSON array (the fields of ``status()``,
        with LSNs as "X/Y" and unknown figures as -1)."""
        return self._render("json")

    def metrics(self) -> str:
        """Prometheus text exposition: statements per node and routing reason,
        errors, node up and state, replica lag in bytes and seconds,
        connections in use and idle."""
        return self._render("metrics")

    def _render(self, which: str) -> str:
        h = self._h
        ptr = h.acquire()
        try:
            text = _core.wr_py_render(ptr, which)
        finally:
            h.release()
        h.deliver()
        return text

    def events(self) -> List[Event]:
        """The node state changes noticed since the last call, oldest first
        (the last 64 are kept). With an ``on_event`` handler set, they go to
        it instead and this returns []."""
        h = self._h
        if h.on_event is not None:
            h.deliver()
            return []
        return [Event.from_raw(raw, h.names) for raw in h.poll_events()]

    def on_event(self, handler: Optional[Callable[[Event], None]]) -> None:
        """Calls ``handler(event)`` for every node state change, on the thread
        of the call that noticed it (after each query, execute, transaction
        call, status, refresh or events). Never from a C thread: with a
        refresher running, changes it notices reach the handler at the next
        such call. None removes the handler. Keep it quick. What it raises
        goes to ``sys.unraisablehook`` (printed to stderr by default), never
        out of the call: that call's work is done (a write has committed)."""
        if handler is not None and not callable(handler):
            raise ProgrammingError("on_event needs a callable or None")
        self._h.on_event = handler

    def start_refresher(self, interval_s: float) -> None:
        """Starts a background thread refreshing lag figures every interval_s
        seconds, for long-running services (without it, figures refresh on
        use). Calling it again changes the interval."""
        ms = int(round(interval_s * 1000))
        if not 1 <= ms <= 0xFFFFFFFF:
            raise ProgrammingError("start_refresher: interval_s must be between 0.001 and 4294967 seconds")
        h = self._h
        ptr = h.acquire()
        try:
            st = _core.wr_cluster_start_refresher(ptr, ms)
            if st:
                _check(st, h)
        finally:
            h.release()

    def stop_refresher(self) -> None:
        """Stops the background refresher (waits for it); idempotent. Closing
        the cluster stops it too."""
        h = self._h
        ptr = h.acquire()
        try:
            _core.wr_cluster_stop_refresher(ptr)
        finally:
            h.release()

    @property
    def nodes(self) -> List[str]:
        """Every node as "host:port", in DSN order."""
        return list(self._h.names)

    @property
    def primary(self) -> Optional[str]:
        """The current primary's "host:port", or None when none is known."""
        h = self._h
        ptr = h.acquire()
        try:
            i = _core.wr_cluster_primary(ptr)
        finally:
            h.release()
        return h.names[i] if 0 <= i < len(h.names) else None

    @property
    def closed(self) -> bool:
        return self._h.closed

    def close(self) -> None:
        """Closes every session still open on the cluster and every pooled
        connection. Waits for calls in flight. Idempotent."""
        self._finalizer()

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        h = self._h
        try:
            primary = self.primary
        except InterfaceError:
            return f"<walrouter.Cluster {', '.join(h.names)} closed>"
        nodes = ", ".join(n + (" (primary)" if n == primary else "") for n in h.names)
        return f"<walrouter.Cluster {nodes}>"


def _option_text(key: str, value: Any) -> str:
    if value is None:  # max_lag_bytes=None: no limit, as "none"
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (bytes, bytearray)):
        try:
            text = bytes(value).decode()
        except UnicodeDecodeError as e:
            raise ProgrammingError(f"option {key}: bytes that are not UTF-8") from e
    else:
        text = str(value)
    if "\x00" in text:
        raise ProgrammingError(f"option {key}: the value contains a NUL character", code="bad_argument")
    return text


def connect(dsn: str, **options: Any) -> Cluster:
    """Opens a cluster from one libpq URI or conninfo listing every node:
    ``connect("postgresql://user:pw@h1:5432,h2:5432,h3:5432/db")``. Roles are
    discovered. Succeeds when at least one node is reachable.

    Options (all optional, see docs/python.md): read_budget_ms,
    retry_interval_ms, pool_size, stmt_cache_size, no_stmt_cache,
    connect_timeout_s, token_ttl_s, token_key, max_lag_bytes, max_lag_ms
    ("none" or None: no limit), refresh_interval_ms, statement_timeout_ms,
    pool_max, nearest, no_refresher. An unknown option or a bad value raises
    ProgrammingError naming it; a bad DSN raises ProgrammingError; no
    reachable node raises OperationalError.
    """
    if not isinstance(dsn, str):
        raise TypeError(f"dsn must be str, not {type(dsn).__name__}")
    if "\x00" in dsn:
        raise ProgrammingError("the DSN contains a NUL character", code="bad_argument")
    opt = _core.wr_py_options_new()
    if opt is None:
        raise OperationalError("out of memory")
    try:
        for key, value in options.items():
            st, msg = _core.wr_options_set(opt, key, _option_text(key, value))
            if st:
                _check(st, msg)
        st, ptr = _core.wr_cluster_open(dsn, opt)  # text is UTF-8: the core asks for it
    finally:
        _core.wr_py_options_free(opt)
    if ptr is None:
        raise OperationalError("out of memory")
    names = tuple(_core.wr_cluster_node_name(ptr, i) for i in range(_core.wr_cluster_nnodes(ptr)))
    h = ClusterHandle(ptr, names)
    if st:
        try:
            _check(st, h)
        finally:
            h.close()
    return Cluster(h)
