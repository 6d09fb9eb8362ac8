"""Result: the rows of one statement, converted to Python values, and where
it ran. A plain Python object: the C result is converted and freed at once."""

from __future__ import annotations

from collections import namedtuple
from typing import TYPE_CHECKING, Any, Dict, Generic, Iterator, List, Optional, Sequence, Tuple, TypeVar, Union, overload

from . import _core
from .adapt import convert_rows
from .errors import ProgrammingError

if TYPE_CHECKING:
    from ._core import RawResult

__all__ = ["Result", "Row", "lsn_text"]

Row = Tuple[Any, ...]
"""A row as queries return it: a tuple of Python values."""

RowT = TypeVar("RowT", covariant=True)

_REASONS = tuple(_core.wr_reason_name(i) for i in range(_core.WR_REASON_COUNT))


def lsn_text(lsn: int) -> str:
    """A WAL position as PostgreSQL writes it: ``"16/B374D848"``."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


class Result(Sequence[RowT], Generic[RowT]):
    """The rows of one statement (tuples of Python values) and where it ran.
    Generic over its row type: queries return ``Result[Row]`` (``Row`` is
    ``Tuple[Any, ...]``); annotate ``Result[Tuple[int, str]]`` when the
    columns are known.

    Behaves as a read-only sequence of rows: ``len(r)``, ``r[0]``, ``for row
    in r``. Also:

    Attributes:
        columns:  column names, in order.
        types:    column type OIDs, in order.
        node:     ``"host:port"`` of the node that served it.
        reason:   why that node (``"replica_cached"``, ``"primary_budget"``,
                  ``"write"``, ...; the names of ``wr_reason``).
        affected: rows affected by a write (INSERT/UPDATE/DELETE...), else 0.
        command:  the command tag, e.g. ``"INSERT 0 1"``.
        lsn:      the WAL position tied to the result, as ``"X/Y"``: a write's
                  commit position, a replica read's proven replay position,
                  a primary read's insert position (``"0/0"`` when none).
    """

    __slots__ = ("columns", "types", "rows", "node", "reason", "affected", "command", "lsn")

    def __init__(self, raw: "RawResult", node_names: Sequence[str]) -> None:
        names, types, rows, node, reason, affected, command, lsn = raw
        self.columns: Tuple[str, ...] = names
        self.types: Tuple[int, ...] = types
        self.rows: List[RowT] = convert_rows(types, rows)
        self.node: Optional[str] = node_names[node] if 0 <= node < len(node_names) else None
        self.reason: str = _REASONS[reason] if 0 <= reason < len(_REASONS) else str(reason)
        self.affected: int = affected
        self.command: str = command
        self.lsn: str = lsn_text(lsn)

    @overload
    def __getitem__(self, i: int) -> RowT: ...
    @overload
    def __getitem__(self, i: slice) -> List[RowT]: ...

    def __getitem__(self, i: Union[int, slice]) -> Union[RowT, List[RowT]]:
        return self.rows[i]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[RowT]:
        return iter(self.rows)

    def scalar(self) -> Any:
        """The first column of the first row (None when there is no row)."""
        if not self.columns:
            raise ProgrammingError("the statement returned no columns")
        return self.rows[0][0] if self.rows else None  # type: ignore[index]

    def dicts(self) -> List[Dict[str, Any]]:
        """The rows as dicts keyed by column name."""
        cols = self.columns
        return [dict(zip(cols, row)) for row in self.rows]  # type: ignore[call-overload]

    def namedtuples(self) -> List[Tuple[Any, ...]]:
        """The rows as named tuples (invalid or duplicate column names are
        renamed _0, _1, ... as collections.namedtuple does)."""
        Named = namedtuple("Row", self.columns, rename=True)  # type: ignore[misc]
        return [Named._make(row) for row in self.rows]  # type: ignore[arg-type]

    def __repr__(self) -> str:
        what = f"{len(self.rows)} row{'s' if len(self.rows) != 1 else ''}"
        if not self.columns:
            what = repr(self.command)
        return f"<walrouter.Result {what} from {self.node} ({self.reason})>"
