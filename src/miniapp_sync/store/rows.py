"""What the Store's methods kept beside their tables share: the Store's database, clock and history setting."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Row, Table, select, update

from miniapp_sync.errors import StoreError

if TYPE_CHECKING:
    from miniapp_sync.clock import Clock
    from miniapp_sync.store.database import Database

T = TypeVar("T")


class Rows:
    """The base of the Store's per-table methods (``InstallationRows``, ``RunRows``, ...); ``Store`` sets these."""

    _db: Database
    _clock: Clock
    _history_days: float

    def _update_one(self, table: Table, id: str, values: dict[str, Any], doing: str, what: str) -> Row[Any]:
        """Change the row with this id and return it as it is now; StoreError when there is none."""
        with self._db.write(doing) as conn:
            conn.execute(update(table).where(table.c.id == id).values(values))
            row = conn.execute(select(table).where(table.c.id == id)).first()
        if row is None:
            raise StoreError(f"cannot {doing}: no such {what}")
        return row


def from_row(build: Callable[..., T], row: Row[Any]) -> T:
    """Build a row's dataclass (an Installation, a Run, a DeadLetter) from a row whose columns are its fields."""
    return build(**row._mapping)
