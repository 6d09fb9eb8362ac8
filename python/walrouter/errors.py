"""The PEP 249 exception tree, and ``_check``: the one place where a C status
becomes a Python exception.

    Error
    ├── InterfaceError
    │   └── TokenError            malformed, tampered or foreign session token
    └── DatabaseError
        ├── OperationalError      unreachable nodes, lost connections, two
        │   │                     primaries (code "split_brain")
        │   ├── NoPrimaryError    no node is (currently) the primary
        │   ├── UnknownOutcomeError  a write or commit may or may not have run
        │   ├── QueryTimeoutError    a deadline passed; the statement did not
        │   │                        complete (safe to retry)
        │   └── QueryInterruptedError  the statement was canceled on request
        │                              (Ctrl-C raises KeyboardInterrupt instead)
        ├── ProgrammingError      bad SQL (class 42), bad argument, bad DSN or
        │                         option, call not valid now
        ├── IntegrityError        SQLSTATE class 23
        ├── DataError             SQLSTATE class 22, values that do not convert
        ├── NotSupportedError     SQLSTATE class 0A
        └── InternalError         walrouter bugs; SQLSTATE classes 25, XX, ...
"""

from __future__ import annotations

from typing import Any, Optional, Tuple, Type, Union

from . import _core

__all__ = [
    "Warning", "Error", "InterfaceError", "DatabaseError", "DataError",
    "OperationalError", "IntegrityError", "InternalError", "ProgrammingError",
    "NotSupportedError", "TokenError", "NoPrimaryError", "UnknownOutcomeError",
    "QueryTimeoutError", "QueryInterruptedError",
]


class Warning(Exception):  # noqa: A001 - the name PEP 249 asks for
    """PEP 249 ``Warning``; walrouter itself never raises it."""


class Error(Exception):
    """Base of every walrouter error.

    Attributes:
        message:  the error text (never contains a password).
        sqlstate: the server's five-character SQLSTATE, or None.
        node:     ``"host:port"`` of the node involved, or None.
        code:     walrouter's status name (``"sql_error"``, ``"connect_error"``,
                  ...; see ``wr_status_name``), or None for errors raised by
                  the Python layer itself.
    """

    def __init__(self, message: str, *, sqlstate: Optional[str] = None,
                 node: Optional[str] = None, code: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate
        self.node = node
        self.code = code

    def __reduce__(self) -> Tuple[Any, ...]:  # keyword-only fields survive pickling
        return (_rebuild, (type(self), self.message, self.sqlstate, self.node, self.code))


def _rebuild(cls: Type["Error"], message: str, sqlstate: Optional[str], node: Optional[str],
             code: Optional[str]) -> "Error":
    return cls(message, sqlstate=sqlstate, node=node, code=code)


class InterfaceError(Error):
    """An error of the interface rather than of the database."""


class TokenError(InterfaceError):
    """A session token that is malformed, tampered with, or signed with
    another key. Treat it like a missing cookie: start a fresh session."""


class DatabaseError(Error):
    """An error reported by, or about, the database."""


class OperationalError(DatabaseError):
    """A node could not be reached or a connection was lost."""


class NoPrimaryError(OperationalError):
    """No node is the primary right now (e.g. during a failover)."""


class UnknownOutcomeError(OperationalError):
    """The connection was lost while a write or a COMMIT was in flight: it
    may or may not have run. walrouter never re-sends such a write."""


class QueryTimeoutError(OperationalError):
    """A deadline passed (``statement_timeout_ms`` for a statement on the
    primary, the read budget, a connect timeout) and the server proved the
    statement did not complete, or it never ran: it is safe to run it again.
    ``code`` is ``"timeout"``. (Not the builtin ``TimeoutError``.)"""


class QueryInterruptedError(OperationalError):
    """The statement was canceled on the server because the caller asked to
    stop. ``code`` is ``"interrupted"``. Ctrl-C (SIGINT) during a call raises
    ``KeyboardInterrupt`` instead, after the same cancel; a signal handler
    that raises makes the call raise that handler's exception."""


class ProgrammingError(DatabaseError):
    """Bad SQL, a bad argument, DSN or option, or a call not valid now."""


class IntegrityError(DatabaseError):
    """A constraint was violated (SQLSTATE class 23)."""


class DataError(DatabaseError):
    """A value was out of range or invalid (SQLSTATE class 22), or could not
    be converted between Python and PostgreSQL."""


class NotSupportedError(DatabaseError):
    """A feature the server does not support (SQLSTATE class 0A)."""


class InternalError(DatabaseError):
    """An internal error of walrouter or the server (e.g. SQLSTATE XX000),
    or a transaction in an invalid state (class 25)."""


# SQLSTATE class -> exception, as psycopg maps them.
_BY_CLASS = {
    "08": OperationalError, "0A": NotSupportedError, "20": ProgrammingError,
    "21": ProgrammingError, "22": DataError, "23": IntegrityError,
    "24": InternalError, "25": InternalError, "26": OperationalError,
    "27": OperationalError, "28": OperationalError, "2B": InternalError,
    "2D": InternalError, "2F": InternalError, "34": OperationalError,
    "38": InternalError, "39": InternalError, "3B": InternalError,
    "3D": ProgrammingError, "3F": ProgrammingError, "40": OperationalError,
    "42": ProgrammingError, "44": ProgrammingError, "53": OperationalError,
    "54": OperationalError, "55": OperationalError, "57": OperationalError,
    "58": OperationalError, "F0": InternalError, "HV": OperationalError,
    "P0": InternalError, "XX": InternalError,
}

# wr_status -> exception, for every status but WR_ERR_SQL.
_BY_STATUS = {
    _core.WR_ERR_ARG: ProgrammingError,
    _core.WR_ERR_TOKEN: TokenError,
    _core.WR_ERR_CONNECT: OperationalError,
    _core.WR_ERR_UNKNOWN_OUTCOME: UnknownOutcomeError,
    _core.WR_ERR_NO_PRIMARY: NoPrimaryError,
    _core.WR_ERR_STATE: ProgrammingError,
    _core.WR_ERR_NOMEM: OperationalError,
    _core.WR_ERR_INTERNAL: InternalError,
    _core.WR_ERR_TIMEOUT: QueryTimeoutError,
    _core.WR_ERR_SPLIT_BRAIN: OperationalError,
    _core.WR_ERR_INTERRUPTED: QueryInterruptedError,
}


class _ErrorSource:
    """What ``_check`` reads the details from: a handle that failed."""

    __slots__ = ()

    def error_details(self) -> "tuple[str, str, Optional[str]]":
        """(message, SQLSTATE or "", node name or None)."""
        raise NotImplementedError


def _check(status: int, source: Union[_ErrorSource, str]) -> None:
    """Raises the exception for a non-OK wr_status. `source` is the handle the
    failing call was made on (its error details are read from it), or the
    message itself when the C call returned one directly."""
    if status != _core.WR_OK:
        raise _error(status, source)


def _error(status: int, source: Union[_ErrorSource, str]) -> "Error":
    """The exception for a failed wr_status (see _check), not raised yet."""
    if isinstance(source, str):
        message, sqlstate, node = source, "", None
    else:
        message, sqlstate, node = source.error_details()
    cls: Type[Error]
    if status == _core.WR_ERR_SQL:
        cls = _BY_CLASS.get(sqlstate[:2], DatabaseError)
    else:
        cls = _BY_STATUS.get(status, InternalError)
    return cls(message or _core.wr_status_name(status), sqlstate=sqlstate or None,
               node=node, code=_core.wr_status_name(status))
