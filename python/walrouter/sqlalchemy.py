"""The SQLAlchemy 1.4 dialect ``postgresql+walrouter://``: SQLAlchemy's
PostgreSQL dialect over walrouter.dbapi.

    from sqlalchemy import create_engine
    engine = create_engine(
        "postgresql+walrouter://app:pw@/app?host=db1:5432&host=db2:5432&host=db3:5432",
        isolation_level="AUTOCOMMIT")

The URL names every node: its host and port, and/or ``host=h:p`` query
entries (repeatable). Query entries that are walrouter options
(``read_budget_ms=200``, ``max_lag_bytes=none``, ...) open the cluster with
them; the others are libpq parameters and stay in the DSN.

Transactions: with the default isolation level, SQLAlchemy's transactions
run on the primary (one walrouter transaction, from the first statement to
commit or rollback); with ``execution_options(postgresql_readonly=True)``
on one replica fresh enough for the session. With
``isolation_level="AUTOCOMMIT"`` each statement is routed on its own: reads
to a fresh replica, writes to the primary, and the connection's reads see
its own writes. ``connection.connection.token`` (the DB-API connection)
carries a session's timeline to the next request: ``.resume(token)``.

Installed with pip, the dialect is registered through the
``sqlalchemy.dialects`` entry point; importing this module registers it too.
"""

from __future__ import annotations

import decimal
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

from sqlalchemy import types as sqltypes  # type: ignore[import]
from sqlalchemy import util
from sqlalchemy.dialects import registry  # type: ignore[import]
from sqlalchemy.dialects.postgresql import JSONB, UUID  # type: ignore[import]
from sqlalchemy.dialects.postgresql.base import PGDialect  # type: ignore[import]
try:
    from sqlalchemy.engine import processors  # type: ignore[import]  # SQLAlchemy 2
except ImportError:
    from sqlalchemy import processors  # SQLAlchemy 1.4
from sqlalchemy.engine.url import URL  # type: ignore[import]

from . import dbapi as _dbapi

__all__ = ["WalrouterDialect", "OPTIONS", "url_from_dsn"]

# walrouter.connect's options: these query entries of the URL open the
# cluster; the others stay in the DSN for libpq.
OPTIONS = frozenset({
    "read_budget_ms", "retry_interval_ms", "pool_size", "pool_max", "stmt_cache_size", "no_stmt_cache",
    "connect_timeout_s", "token_ttl_s", "token_key", "max_lag_bytes", "max_lag_ms", "refresh_interval_ms",
    "statement_timeout_ms", "nearest", "no_refresher",
})

_FLOATS = frozenset({700, 701})


class _Numeric(sqltypes.Numeric):  # type: ignore[misc]
    """walrouter returns numeric as Decimal and float4/float8 as float."""

    def bind_processor(self, dialect: Any) -> None:
        return None

    def result_processor(self, dialect: Any, coltype: int) -> Optional[Callable[[Any], Any]]:
        if self.asdecimal:
            if coltype in _FLOATS:
                return processors.to_decimal_processor_factory(  # type: ignore[no-any-return]
                    decimal.Decimal, self._effective_decimal_return_scale)
            return None
        if coltype in _FLOATS:
            return None
        return processors.to_float  # type: ignore[no-any-return]


class _Float(_Numeric, sqltypes.Float):  # type: ignore[misc]
    pass


class _JSON(sqltypes.JSON):  # type: ignore[misc]
    """Values arrive decoded already."""

    def result_processor(self, dialect: Any, coltype: int) -> None:
        return None


class _JSONB(JSONB):  # type: ignore[misc]
    def result_processor(self, dialect: Any, coltype: int) -> None:
        return None


class _UUID(UUID):  # type: ignore[misc]
    """Values arrive as uuid.UUID; parameters go as text."""

    def bind_processor(self, dialect: Any) -> Callable[[Any], Any]:
        def process(value: Any) -> Any:
            return None if value is None else str(value)
        return process

    def result_processor(self, dialect: Any, coltype: int) -> Optional[Callable[[Any], Any]]:
        if self.as_uuid:
            return None

        def process(value: Any) -> Any:
            return None if value is None else str(value)
        return process


class WalrouterDialect(PGDialect):  # type: ignore[misc]
    driver = "walrouter"
    supports_statement_cache = True
    default_paramstyle = "pyformat"
    supports_sane_multi_rowcount = True
    supports_native_decimal = True
    supports_unicode_statements = True
    supports_unicode_binds = True
    description_encoding = None
    colspecs = util.update_copy(PGDialect.colspecs, {
        sqltypes.Numeric: _Numeric,
        sqltypes.Float: _Float,
        sqltypes.JSON: _JSON,
        JSONB: _JSONB,
        UUID: _UUID,
    })

    @classmethod
    def dbapi(cls) -> Any:  # SQLAlchemy 1.4
        return _dbapi

    @classmethod
    def import_dbapi(cls) -> Any:  # SQLAlchemy 2
        return _dbapi

    def create_connect_args(self, url: URL) -> Tuple[List[Any], Dict[str, Any]]:
        """(the libpq URI naming every node, walrouter options)."""
        return [dsn_from_url(url)], options_from_url(url)

    # Isolation: AUTOCOMMIT routes every statement; otherwise transactions
    # run READ COMMITTED on the primary (REPEATABLE READ READ ONLY on a
    # replica when postgresql_readonly is set).
    _isolation_lookup = {"AUTOCOMMIT", "READ COMMITTED"}

    def set_isolation_level(self, connection: Any, level: str) -> None:
        level = level.replace("_", " ").upper()
        if level not in self._isolation_lookup:
            from sqlalchemy import exc
            raise exc.ArgumentError(
                f"Invalid value {level!r} for isolation_level: walrouter takes AUTOCOMMIT (each statement "
                "routed on its own) or READ COMMITTED (transactions on the primary)")
        connection.autocommit = level == "AUTOCOMMIT"

    def get_isolation_level(self, connection: Any) -> str:
        return "AUTOCOMMIT" if connection.autocommit else "READ COMMITTED"

    def set_readonly(self, connection: Any, value: bool) -> None:
        connection.read_only = value

    def get_readonly(self, connection: Any) -> bool:
        return bool(connection.read_only)

    def is_disconnect(self, e: Any, connection: Any, cursor: Any) -> bool:
        if isinstance(e, _dbapi.InterfaceError):
            return "closed" in str(e)
        return False


def dsn_from_url(url: URL) -> str:
    """postgresql://user:pw@h1:p1,h2:p2/db?libpq params, from the URL's host
    and port and its host=h:p query entries."""
    from urllib.parse import quote
    hosts = []
    if url.host:
        hosts.append(url.host + (f":{url.port}" if url.port else ""))
    extra = url.query.get("host", ())
    hosts.extend([extra] if isinstance(extra, str) else list(extra))
    auth = ""
    if url.username:
        auth = quote(url.username, safe="")
        if url.password is not None:
            auth += ":" + quote(str(url.password), safe="")
        auth += "@"
    params = []
    for key, value in url.query.items():
        if key == "host" or key in OPTIONS:
            continue
        for v in ([value] if isinstance(value, str) else value):
            params.append(f"{quote(key, safe='')}={quote(v, safe='')}")
    query = ("?" + "&".join(params)) if params else ""
    return f"postgresql://{auth}{','.join(hosts)}/{quote(url.database or '', safe='')}{query}"


def url_from_dsn(dsn: str, **options: Any) -> str:
    """The ``postgresql+walrouter://`` URL of a libpq multi-host URI, with
    walrouter options: ``url_from_dsn("postgresql://u:pw@h1:5432,h2:5432/db",
    read_budget_ms=200)``."""
    from urllib.parse import quote
    m = re.match(r"^postgres(?:ql)?://(?:(?P<auth>[^@/]*)@)?(?P<hosts>[^/?]*)(?:/(?P<db>[^?]*))?"
                 r"(?:\?(?P<query>.*))?$", dsn)
    if not m:
        raise ValueError("not a postgresql:// URI (key=value DSNs: write the URL by hand)")
    query = [f"host={quote(h, safe=':[]')}" for h in m.group("hosts").split(",") if h]
    if m.group("query"):
        query.append(m.group("query"))
    query.extend(f"{k}={quote(str(v), safe='')}" for k, v in options.items())
    auth = f"{m.group('auth')}@" if m.group("auth") else ""
    return f"postgresql+walrouter://{auth}/{m.group('db') or ''}" + ("?" + "&".join(query) if query else "")


def options_from_url(url: URL) -> Dict[str, Any]:
    return {k: v for k, v in url.query.items() if k in OPTIONS}


registry.register("postgresql.walrouter", "walrouter.sqlalchemy", "WalrouterDialect")
