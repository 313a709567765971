"""The webhook inbox: deliveries stored durably before they are acknowledged, then processed in order.

A row is ``pending`` until the processor claims it (``processing``, one more attempt counted),
then ``done``, or ``failed`` once dead-lettered. Deliveries that need no processing are kept as
``ignored`` (no handler, no trigger), ``unmatched`` (no installation, or an uninstalled one) or
``ping``. ``add`` is the receiver's group commit: many deliveries in one transaction, resends
(same installation, event, transaction id and body, D26) left out. ``transaction()`` is the
processor's: record writes, the outbox
event and the row's new state commit together, so reprocessing after a crash cannot double up.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, Literal

import orjson
from sqlalchemy import Row, delete, func, insert, select, update

from miniapp_sync.store.inbox_insert import insert_entries
from miniapp_sync.store.processing import Processing, claim_due, pending_rows, to_claim
from miniapp_sync.store.store import Store
from miniapp_sync.store.tables import dead_letters
from miniapp_sync.store.webhook_model import Added, InboxEntry, InboxRow, InboxStatus
from miniapp_sync.store.webhook_tables import webhook_inbox

Assigned = Literal["assigned", "duplicate", "not_unmatched"]
FINISHED: Final = ("done", "ignored", "ping", "unmatched")  # what purge() may forget

i = webhook_inbox.c


def _row(row: Row[Any]) -> InboxRow:
    return InboxRow(**row._mapping)


class Inbox:
    """The inbox table, on the store's database."""

    def __init__(self, store: Store) -> None:
        self._db = store.database
        self._clock = store.clock
        self._history = store.history_retention is not None

    def add(self, entries: Sequence[InboxEntry]) -> list[Added]:
        """Store deliveries in one transaction; return, per entry, whether it was new, a resend or a reused key."""
        now = self._clock.now()
        with self._db.write(f"store {len(entries)} webhook deliveries") as conn:
            return insert_entries(conn, entries, now)

    def assign(self, id: int, installation_id: str, event: str | None, transaction_id: str | None) -> Assigned:
        """Give an unmatched row its installation, event and key (D24a), queued to be processed.

        A row whose key and body an installation's inbox holds already is a resend: it is kept as
        ``ignored``, naming the first. Returns what became of it (``not_unmatched``: left alone).
        """
        with self._db.write(f"assign webhook delivery {id}") as conn:
            row = conn.execute(select(i.status, i.digest).where(i.id == id)).first()
            if row is None or row.status != "unmatched":
                return "not_unmatched"
            first = None
            if transaction_id is not None and event is not None:
                same = (i.installation_id == installation_id, i.transaction_id == transaction_id, i.event == event)
                first = conn.execute(select(i.id).where(*same, i.digest == row.digest)).scalar()
            values: dict[str, Any] = {"installation_id": installation_id, "event": event, "processed_at": None}
            if first is not None:
                values.update(status="ignored", error=f"a resend of delivery {first}, already stored")
            else:
                values.update(transaction_id=transaction_id, status="pending", error=None)
            conn.execute(update(webhook_inbox).where(i.id == id).values(values))
        return "duplicate" if first is not None else "assigned"

    def pending_heads(self) -> list[tuple[str, str, float | None]]:
        """Return (installation id, ns, when the head may run) of every installation with pending rows."""
        heads = (
            select(i.installation_id, func.min(i.id).label("head"))
            .where(i.status == "pending", i.installation_id.is_not(None))
            .group_by(i.installation_id)
            .subquery()
        )
        query = select(i.installation_id, i.ns, i.next_attempt_at).join(heads, i.id == heads.c.head)
        with self._db.read("find pending webhook deliveries") as conn:
            return [(r[0], r[1], r[2]) for r in conn.execute(query)]

    def pending(self, installation_id: str, limit: int) -> list[InboxRow]:
        """Return an installation's pending rows in arrival order."""
        with self._db.read("read pending webhook deliveries") as conn:
            return [_row(r) for r in conn.execute(pending_rows(installation_id, limit))]

    def claim_due(self, installation_id: str, limit: int) -> tuple[list[InboxRow], float | None]:
        """Claim an installation's next pending rows that are due, in arrival order, as ``claim`` does.

        Return the claimed rows (as claimed) and, when none is due, when the head comes due (None: none
        pends). Nothing passes a row that waits for its retry. One write transaction, where reading the
        rows and claiming them apart cost two (a commit is most of a batch's fixed cost on SQLite).
        Not durable (no fsync): a claim a power cut loses leaves its rows pending, to be claimed again.
        """
        now = self._clock.now()
        with self._db.write("claim webhook deliveries", durable=False) as conn:
            return claim_due(conn, installation_id, limit, now)

    def claim(self, ids: Sequence[int]) -> None:
        """Mark pending rows as being processed, counting the attempt before it is made (a crash counts too)."""
        with self._db.write("claim webhook deliveries") as conn:
            conn.execute(to_claim(ids))

    def release(self, ids: Sequence[int]) -> None:
        """Put claimed rows that were not attempted back, uncounted."""
        stmt = (
            update(webhook_inbox)
            .where(i.id.in_(ids), i.status == "processing")
            .values(status="pending", attempts=i.attempts - 1)
        )
        with self._db.write("release webhook deliveries") as conn:
            conn.execute(stmt)

    def retry_at(self, id: int, when: float, reason: str) -> None:
        """Put a row that failed back in the queue, not to be tried before ``when``."""
        stmt = update(webhook_inbox).where(i.id == id).values(status="pending", next_attempt_at=when, error=reason)
        with self._db.write("schedule a webhook retry") as conn:
            conn.execute(stmt)

    def recover(self, installation_id: str | None = None) -> int:
        """Put rows a stopped processor left in 'processing' back (one installation's, or all); return how many.

        Only the owner of the rows may call this: the one processor of an embedded server at its
        start (all rows), or a drain job holding its installation's lock (that installation's).
        """
        stmt = update(webhook_inbox).where(i.status == "processing").values(status="pending")
        look = select(i.id).where(i.status == "processing").limit(1)
        if installation_id is not None:
            stmt = stmt.where(i.installation_id == installation_id)
            look = look.where(i.installation_id == installation_id)
        # Every drain job asks (D33), and nearly always nothing is left: a read, not a write transaction.
        with self._db.read("look for interrupted webhook deliveries") as conn:
            if conn.execute(look).first() is None:
                return 0
        with self._db.write("recover webhook deliveries") as conn:
            return int(conn.execute(stmt).rowcount)

    def reopen(self, id: int) -> bool:
        """Claim a failed row again (a replay); False when it is not failed."""
        return self.reclaim(id, "failed")

    def reclaim(self, id: int, status: InboxStatus) -> bool:
        """Claim a row in ``status`` for a replay (failed, or pending its retry); False when it is not in it."""
        stmt = (
            update(webhook_inbox)
            .where(i.id == id, i.status == status)
            .values(status="processing", attempts=i.attempts + 1, next_attempt_at=None)
        )
        with self._db.write("reopen a webhook delivery") as conn:
            return bool(conn.execute(stmt).rowcount)

    def put_back(self, id: int, status: InboxStatus) -> None:
        """Put a row a replay claimed back to ``status`` when the replay stopped before finishing it.

        Only a row still claimed moves: one the processor finished meanwhile (done, or failed
        again with its reason) stays as it is.
        """
        stmt = update(webhook_inbox).where(i.id == id, i.status == "processing").values(status=status)
        with self._db.write("put back a replayed webhook delivery") as conn:
            conn.execute(stmt)

    def restore(self, payload: dict[str, Any], installation_id: str) -> int:
        """Insert a dead letter's delivery again, claimed (its row is gone); return the new row's id."""
        body = payload.get("body")
        raw = body.encode() if isinstance(body, str) else orjson.dumps(body)
        row = {
            "ns": payload.get("ns") or "",
            "installation_id": installation_id,
            "event": payload.get("event"),
            "transaction_id": None,  # the original key may be taken again by now; a replay is deliberate
            "status": "processing",
            "body": raw,
            "attempts": 1,
            "received_at": float(payload.get("receivedAt") or self._clock.now()),
        }
        with self._db.write("restore a webhook delivery") as conn:
            return int(conn.execute(insert(webhook_inbox).values(row).returning(i.id)).scalar_one())

    def get(self, id: int) -> InboxRow | None:
        """Return one row, or None."""
        with self._db.read("read a webhook delivery") as conn:
            row = conn.execute(select(webhook_inbox).where(i.id == id)).first()
        return None if row is None else _row(row)

    def list(
        self,
        *,
        status: InboxStatus | None = None,
        installation_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[InboxRow]:
        """Return rows oldest first, ``offset`` rows in."""
        query = select(webhook_inbox).order_by(i.id).limit(limit).offset(offset)
        if status is not None:
            query = query.where(i.status == status)
        if installation_id is not None:
            query = query.where(i.installation_id == installation_id)
        with self._db.read("list webhook deliveries") as conn:
            return [_row(r) for r in conn.execute(query)]

    def counts(self) -> dict[str, int]:
        """Return how many rows are in each state."""
        query = select(i.status, func.count()).group_by(i.status)
        with self._db.read("count webhook deliveries") as conn:
            return {r[0]: int(r[1]) for r in conn.execute(query)}

    def purge(self, before: float) -> int:
        """Forget finished rows received before ``before`` (their de-duplication keys go with them, D26)."""
        stmt = delete(webhook_inbox).where(i.status.in_(FINISHED), i.received_at < before)
        with self._db.write("purge old webhook deliveries") as conn:
            return int(conn.execute(stmt).rowcount)

    def set_dead_letter_reason(self, id: int, reason: str) -> None:
        """Replace a dead letter's reason (a replay that failed again)."""
        with self._db.write(f"update dead letter {id}") as conn:
            conn.execute(update(dead_letters).where(dead_letters.c.id == id).values(reason=reason))

    @contextmanager
    def transaction(self) -> Iterator[Processing]:
        """Yield one write transaction for processing rows; it commits when the block ends without error."""
        with self._db.write("process webhook deliveries") as conn:
            tx = Processing(conn, self._clock.now(), history=self._history)
            yield tx
            tx.finish()
