"""The rejection trail (D24a): what the webhook routes refused, and why, without the bodies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select

from miniapp_sync.store.store import Store
from miniapp_sync.store.webhook_tables import webhook_rejections

w = webhook_rejections.c


@dataclass(frozen=True, slots=True)
class Rejection:
    """One refused delivery: when, where, how big, the body's digest, redacted headers, the answer and why."""

    ns: str
    route: str
    installation_id: str | None
    status: int
    reason: str
    size: int
    digest: str | None
    headers: dict[str, str]
    received_at: float
    id: int = 0


class Rejections:
    """The rejection table, on the store's database."""

    def __init__(self, store: Store) -> None:
        self._db = store.database

    def add(self, rejection: Rejection) -> int:
        """Keep one rejection; return its id."""
        values: dict[str, Any] = {
            "ns": rejection.ns,
            "route": rejection.route,
            "installation_id": rejection.installation_id,
            "status": rejection.status,
            "reason": rejection.reason,
            "size": rejection.size,
            "digest": rejection.digest,
            "headers": rejection.headers,
            "received_at": rejection.received_at,
        }
        with self._db.write("record a refused webhook delivery") as conn:
            return int(conn.execute(insert(webhook_rejections).values(values).returning(w.id)).scalar_one())

    def list(self, *, ns: str | None = None, limit: int = 100, offset: int = 0) -> list[Rejection]:
        """Return rejections oldest first."""
        query = select(webhook_rejections).order_by(w.id).limit(limit).offset(offset)
        if ns is not None:
            query = query.where(w.ns == ns)
        with self._db.read("list refused webhook deliveries") as conn:
            return [Rejection(**row._mapping) for row in conn.execute(query)]

    def purge(self, before: float) -> int:
        """Forget rejections older than ``before``."""
        with self._db.write("purge old webhook rejections") as conn:
            return int(conn.execute(delete(webhook_rejections).where(w.received_at < before)).rowcount)
