"""Resource checkpoints: where a resource's listing stands, saved in the transaction of the batch it covers (D6)."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Connection, delete, select
from sqlalchemy.sql.dml import Insert

from miniapp_sync.store import dialects
from miniapp_sync.store.driver import on_sqlite
from miniapp_sync.store.rows import Rows
from miniapp_sync.store.tables import checkpoints


@cache
def _checkpoint_upsert(dialect: str) -> Insert:
    stmt = dialects.insert(dialect, checkpoints)
    changes = {name: stmt.excluded[name] for name in ("run_id", "state", "updated_at")}
    return stmt.on_conflict_do_update(index_elements=list(checkpoints.primary_key), set_=changes)


def save_checkpoint(
    conn: Connection, installation_id: str, resource: str, state: dict[str, Any], *, run_id: str | None, now: float
) -> None:
    """Insert or replace the checkpoint of (installation, resource)."""
    row = {
        "installation_id": installation_id,
        "resource": resource,
        "run_id": run_id,
        "state": state,
        "updated_at": now,
    }
    if conn.dialect.name == "sqlite":
        serialise = checkpoints.c.state.type.bind_processor(conn.dialect)  # the engine's json_serializer
        assert serialise is not None
        on_sqlite(conn, _checkpoint_upsert("sqlite"), {**row, "state": serialise(state)})
        return
    conn.execute(_checkpoint_upsert(conn.dialect.name), row)


class CheckpointRows(Rows):
    """The Store's checkpoints: read and cleared; saved with the batch they cover (``records.write_records``)."""

    def get_checkpoint(self, installation_id: str, resource: str) -> dict[str, Any] | None:
        """Return the saved state of (installation, resource), or None."""
        c = checkpoints.c
        query = select(c.state).where(c.installation_id == installation_id, c.resource == resource)
        with self._db.read("read a checkpoint") as conn:
            state: dict[str, Any] | None = conn.execute(query).scalar_one_or_none()
        return state

    def clear_checkpoint(self, installation_id: str, resource: str) -> None:
        """Forget the checkpoint of (installation, resource), so the next run starts from the beginning."""
        c = checkpoints.c
        with self._db.write(f"clear the checkpoint of {resource!r}") as conn:
            conn.execute(delete(checkpoints).where(c.installation_id == installation_id, c.resource == resource))
