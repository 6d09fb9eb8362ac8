"""Ownership of the C handles.

Each handle object owns one C pointer and frees it exactly once; ``close()``
is idempotent and is what the public classes' ``close()``, context managers
and ``weakref.finalize`` all call. A handle never refers back to its public
object, so that object can be garbage-collected while the handle lives on in
its cluster's set until it is closed.

- ``SessionHandle``: one thread at a time. Its lock is held during every call
  (so a session shared by mistake serializes instead of corrupting memory) and
  by ``close()`` (which so waits for a call in flight). It also owns the C
  stream open on the session, if any (at most one: a stream holds the session
  in a transaction), and closes it before the session.
- ``ClusterHandle``: shared by threads. Calls on it count as users;
  ``close()`` refuses new users, waits for the current ones, closes every
  session still open on the cluster, then frees the cluster.

After ``fork()``, the child's handles are forgotten, not freed: their
connections are the parent's (closing them would send the server a
Terminate on the parent's sockets), so the child leaves them alone and any
use of them raises InterfaceError.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from typing import Any, Callable, List, NamedTuple, Optional, Set, Tuple, cast

from . import _core
from .errors import InterfaceError, _ErrorSource


class _Unraisable(NamedTuple):
    """What sys.unraisablehook expects to be told."""

    exc_type: type
    exc_value: BaseException
    exc_traceback: Any
    err_msg: str
    object: Any


class ClusterHandle(_ErrorSource):
    __slots__ = ("ptr", "names", "sessions", "on_event", "forked", "_cond", "_users", "__weakref__")

    def __init__(self, ptr: Any, names: Tuple[str, ...]) -> None:
        self.ptr = ptr
        self.names = names                       # "host:port" per node, DSN order
        self.sessions: Set[SessionHandle] = set()  # open sessions (set ops are atomic)
        self.on_event: Optional[Callable[[Any], None]] = None  # see Cluster.on_event
        self.forked = False                      # forgotten in a child process
        self._cond = threading.Condition(threading.Lock())
        self._users = 0
        _open_clusters.add(self)

    def closed_error(self, what: str) -> InterfaceError:
        if self.forked:
            return InterfaceError(f"the {what} was opened in another process (before a fork): "
                                  "open a new cluster in this one")
        return InterfaceError(f"the {what} is closed")

    def acquire(self) -> Any:
        """The pointer, held open until release(); InterfaceError if closed."""
        with self._cond:
            if self.ptr is None:
                raise self.closed_error("cluster")
            self._users += 1
            return self.ptr

    def release(self) -> None:
        with self._cond:
            self._users -= 1
            if self._users == 0:
                self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self.ptr is None

    def poll_events(self) -> List[Tuple[int, str, str, int]]:
        """Removes and returns the pending node state changes."""
        ptr = self.acquire()
        try:
            return _core.wr_py_poll_events(ptr)
        finally:
            self.release()

    def deliver(self) -> None:
        """Hands pending events to the on_event handler, on this thread.
        Polling removes them from the C queue, so every one of them reaches
        the handler even if it raises. What it raises goes to
        sys.unraisablehook and never out of the call that delivered it: that
        call's work is done (a write has committed), and an exception there
        would invite running it again (G5)."""
        handler = self.on_event
        with self._cond:  # closed meanwhile (by another thread): nothing to deliver
            if handler is None or self.ptr is None:
                return
            self._users += 1
            ptr = self.ptr
        try:
            pending = _core.wr_py_poll_events(ptr)
        finally:
            self.release()
        from .cluster import Event  # the public type; imported late (cycle)
        for raw in pending:
            try:
                handler(Event.from_raw(raw, self.names))
            except Exception as e:  # the user's handler: reported, not raised
                sys.unraisablehook(cast(Any, _Unraisable(type(e), e, e.__traceback__,
                                                         "Exception ignored in walrouter on_event handler",
                                                         handler)))

    def close(self) -> None:
        with self._cond:
            ptr, self.ptr = self.ptr, None
            if ptr is None:
                return
            self._cond.wait_for(lambda: self._users == 0)
        for s in list(self.sessions):
            s.close()
        self.on_event = None
        _open_clusters.discard(self)
        _core.wr_cluster_close(ptr)  # also stops a running refresher

    def forget(self) -> None:
        """In a child process after fork(): drops the C handles unfreed (a
        small leak in the child; the parent's connections are untouched).
        Locks are replaced: a thread that held one does not exist here."""
        self._cond = threading.Condition(threading.Lock())
        self.forked = True
        self.ptr = None
        self.on_event = None
        for s in list(self.sessions):
            s.lock = threading.Lock()
            s.ptr = None
            s.stream = s.abandoned = None
        self.sessions.clear()

    def error_details(self) -> Tuple[str, str, Optional[str]]:
        node = _core.wr_cluster_errnode(self.ptr)
        names = self.names
        return (_core.wr_cluster_errmsg(self.ptr), _core.wr_cluster_sqlstate(self.ptr),
                names[node] if 0 <= node < len(names) else None)


class SessionHandle(_ErrorSource):
    __slots__ = ("ptr", "lock", "cluster", "stream", "abandoned", "__weakref__")

    def __init__(self, ptr: Any, cluster: ClusterHandle) -> None:
        self.ptr = ptr
        self.lock = threading.Lock()
        self.cluster = cluster
        self.stream: Any = None     # the C stream open on this session
        self.abandoned: Any = None  # that stream, once its Stream was collected
        _core.wr_py_set_interrupt(ptr)  # Ctrl-C cancels a running statement
        cluster.sessions.add(self)

    def closed_error(self) -> InterfaceError:
        return self.cluster.closed_error("session")

    def ready(self) -> Any:
        """With the lock held, before a call on the session: its pointer,
        once a stream abandoned meanwhile is closed; InterfaceError if the
        session is closed."""
        if self.ptr is None:
            raise self.closed_error()
        if self.abandoned is not None:
            self.close_abandoned()
        return self.ptr

    # The stream methods run with the lock held.

    def close_stream(self) -> None:
        """Ends the open stream's transaction and frees it. Its status is
        not raised: ending a read-only transaction loses nothing, and after
        a failed fetch the server has already rolled it back."""
        st, self.stream = self.stream, None
        self.abandoned = None
        if st is not None:
            _core.wr_stream_close(st)

    def close_abandoned(self) -> None:
        """Closes the stream whose Stream object was collected while the
        session was busy (see abandon_stream)."""
        if self.abandoned is self.stream:
            self.close_stream()
        self.abandoned = None

    def abandon_stream(self, st: Any) -> None:
        """The Stream owning `st` was collected: close it now if the session
        is free, else at the session's next call. Never waits: a collection
        can run on the thread that holds the lock (in the middle of a call,
        where a signal handler runs)."""
        if not self.lock.acquire(blocking=False):
            self.abandoned = st
            return
        try:
            if st is self.stream and self.ptr is not None:
                self.close_stream()
        finally:
            self.lock.release()

    def close(self) -> None:
        with self.lock:
            ptr, self.ptr = self.ptr, None
            if ptr is not None:
                try:
                    if self.stream is not None:  # its transaction is rolled back, then it is freed
                        try:
                            if _core.wr_session_in_transaction(ptr):
                                _core.wr_rollback(ptr)
                        finally:
                            self.close_stream()
                finally:
                    _core.wr_session_free(ptr)  # rolls back an open transaction
        self.cluster.sessions.discard(self)

    def error_details(self) -> Tuple[str, str, Optional[str]]:
        node = _core.wr_session_errnode(self.ptr)
        names = self.cluster.names
        return (_core.wr_session_errmsg(self.ptr), _core.wr_session_sqlstate(self.ptr),
                names[node] if 0 <= node < len(names) else None)


_open_clusters: "weakref.WeakSet[ClusterHandle]" = weakref.WeakSet()


def _set_main_thread() -> None:
    """Tells the C glue which thread runs Python's signal handlers: only
    there does a waiting call run them (and stop on KeyboardInterrupt)."""
    _core.wr_py_set_main_thread(threading.main_thread().ident or 0)


_set_main_thread()


def _forget_after_fork() -> None:
    _set_main_thread()  # the forking thread is the child's main thread
    for h in list(_open_clusters):
        h.forget()
    _open_clusters.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def finalize(owner: object, handle: Any) -> weakref.finalize:
    """Closes handle when owner is garbage-collected (or at exit)."""
    return weakref.finalize(owner, handle.close)
