"""Dead letters in the store: records and deliveries that could not be processed, kept to be replayed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, select, update

from miniapp_sync.errors import StoreError
from miniapp_sync.store.model import DEAD_LETTER_KINDS, DeadLetter, DeadLetterKind, check_allowed
from miniapp_sync.store.rows import Rows, from_row
from miniapp_sync.store.tables import dead_letters


def insert_dead_letter(
    conn: Connection,
    installation_id: str,
    *,
    kind: DeadLetterKind,
    source: str,
    payload: Any,
    reason: str,
    run_id: str | None,
    now: float,
) -> int:
    """Add a dead letter inside the caller's transaction; return its id (every dead letter is written here)."""
    check_allowed(kind, DEAD_LETTER_KINDS, "dead letter kind")
    values = {
        "installation_id": installation_id,
        "kind": kind,
        "source": source,
        "payload": payload,
        "reason": reason,
        "run_id": run_id,
        "created_at": now,
    }
    return int(conn.execute(insert(dead_letters).values(values).returning(dead_letters.c.id)).scalar_one())


class DeadLetterRows(Rows):
    """The Store's dead letters."""

    def add_dead_letter(
        self,
        installation_id: str,
        *,
        kind: DeadLetterKind,
        source: str,
        payload: Any,
        reason: str,
        run_id: str | None = None,
    ) -> int:
        """Keep a record or delivery that could not be processed, in a transaction of its own; return its id."""
        with self._db.write(f"add a dead letter for installation {installation_id!r}") as conn:
            return insert_dead_letter(
                conn, installation_id, kind=kind, source=source, payload=payload, reason=reason, run_id=run_id,
                now=self._clock.now(),
            )  # fmt: skip

    def list_dead_letters(
        self,
        installation_id: str | None = None,
        *,
        installation_ids: Sequence[str] | None = None,
        kind: DeadLetterKind | None = None,
        include_replayed: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> list[DeadLetter]:
        """Return dead letters oldest first, the order to replay them in, ``offset`` rows in."""
        d = dead_letters.c
        query = select(dead_letters).order_by(d.id).limit(limit).offset(offset)
        if installation_id is not None:
            query = query.where(d.installation_id == installation_id)
        if installation_ids is not None:  # the installations of a tenant, say
            query = query.where(d.installation_id.in_(installation_ids))
        if kind is not None:
            query = query.where(d.kind == kind)
        if not include_replayed:
            query = query.where(d.replayed_at.is_(None))
        with self._db.read("list dead letters") as conn:
            return [from_row(DeadLetter, row) for row in conn.execute(query)]

    def get_dead_letter(self, id: int) -> DeadLetter | None:
        """Return the dead letter with this id, or None."""
        with self._db.read("read a dead letter") as conn:
            row = conn.execute(select(dead_letters).where(dead_letters.c.id == id)).first()
        return None if row is None else from_row(DeadLetter, row)

    def mark_replayed(self, id: int) -> None:
        """Record that a dead letter was replayed, so it leaves the default listing."""
        stmt = update(dead_letters).where(dead_letters.c.id == id).values(replayed_at=self._clock.now())
        with self._db.write(f"mark dead letter {id} replayed") as conn:
            if conn.execute(stmt).rowcount == 0:
                raise StoreError(f"cannot mark dead letter {id} replayed: no such dead letter")
