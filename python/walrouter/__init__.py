"""walrouter: use a PostgreSQL primary and its streaming replicas as one
database. Writes go to the primary; reads go to a replica that has provably
replayed (by WAL position) everything the session must see, else, after a
short bounded retry, to the primary.

    import walrouter

    cluster = walrouter.connect("postgresql://app:pw@db1,db2,db3/app")
    with cluster.session(token=cookie) as s:
        s.execute("INSERT INTO notes (body) VALUES ($1)", "hello")
        rows = s.query("SELECT body FROM notes")   # sees the insert
        cookie = s.token                            # for the next request

A Cluster is shared by threads; a Session is one user's or one request's
view (cheap, one thread at a time). Errors follow PEP 249 (walrouter.Error,
OperationalError, IntegrityError, ...) and carry ``sqlstate`` and ``node``.
"""

from __future__ import annotations

import datetime as _dt

from . import _core
from .cluster import Cluster, Event, NodeStatus, connect
from .errors import (DatabaseError, DataError, Error, IntegrityError, InterfaceError,
                     InternalError, NoPrimaryError, NotSupportedError, OperationalError,
                     ProgrammingError, QueryInterruptedError, QueryTimeoutError, TokenError,
                     UnknownOutcomeError, Warning)
from .result import Result, Row
from .session import Session
from .stream import Stream

__version__ = _core.WR_VERSION

# Module globals in PEP 249's terms. walrouter's own API (Cluster, Session)
# takes PostgreSQL's $1, $2, ... placeholders: no PEP 249 style is that, and
# "numeric_dollar" is the name SQLAlchemy 2 gives it. The PEP 249
# connection and cursor (paramstyle "pyformat": %s, %(name)s) are in
# walrouter.dbapi.
apilevel = "2.0"
threadsafety = 2     # threads may share the module and a Cluster, not a Session
paramstyle = "numeric_dollar"

# PEP 249 constructors, for familiarity: parameters take these types directly.
Date = _dt.date
Time = _dt.time
Timestamp = _dt.datetime
Binary = bytes

__all__ = [
    "connect", "Cluster", "Session", "Result", "Row", "Stream", "Event", "NodeStatus",
    "Warning", "Error", "InterfaceError", "DatabaseError", "DataError",
    "OperationalError", "IntegrityError", "InternalError", "ProgrammingError",
    "NotSupportedError", "TokenError", "NoPrimaryError", "UnknownOutcomeError",
    "QueryTimeoutError", "QueryInterruptedError",
    "apilevel", "threadsafety", "paramstyle", "Date", "Time", "Timestamp", "Binary",
]

# Show the public names where users import them from (walrouter.IntegrityError).
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith("walrouter."):
        _obj.__module__ = "walrouter"
del _name, _obj
