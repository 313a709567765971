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

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import cache, lru_cache
from typing import Any, Final, Literal

import orjson
from sqlalchemy import Connection, Row, Select, Update, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from miniapp_sync.store.processing import Processing, add_dead_letter
from miniapp_sync.store.store import Store
from miniapp_sync.store.tables import dead_letters
from miniapp_sync.store.webhook_model import Added, InboxEntry, InboxRow, InboxStatus
from miniapp_sync.store.webhook_tables import webhook_inbox

Assigned = Literal["assigned", "duplicate", "not_unmatched"]
FINISHED: Final = ("done", "ignored", "ping", "unmatched")  # what purge() may forget
_CHUNK: Final = 500  # values per IN (...) list

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
        added: list[Added] = ["new"] * len(entries)
        rows: list[tuple[Any, ...]] = []
        keyed: list[tuple[int, _Key]] = []  # (position, key with digest) of each keyed row inserted
        dead: list[int] = []
        with self._db.write(f"store {len(entries)} webhook deliveries") as conn:
            dialect = conn.dialect.name
            entries = _turn_away_uninstalled(conn, entries)
            # PostgreSQL: the insert says which keys were new (RETURNING), which also settles a race
            # with another receiver storing the same resend; one round trip, and no lookup for a
            # planner misled by a young table's statistics to turn into a scan of the inbox.
            known = {} if dialect == "postgresql" else _existing(conn, entries)
            for position, entry in enumerate(entries):
                digest = hashlib.sha256(entry.body).digest()
                reused = False
                if entry.installation_id and entry.transaction_id and entry.event is not None:
                    bodies = known.setdefault((entry.installation_id, entry.transaction_id, entry.event), set())
                    if digest in bodies:
                        added[position] = "duplicate"
                        continue
                    if bodies:
                        reused, added[position] = True, "reused"
                    bodies.add(digest)
                    if entry.status != "failed":
                        keyed.append((position, (entry.installation_id, entry.transaction_id, entry.event, digest)))
                if entry.status == "failed":
                    dead.append(position)
                else:
                    rows.append(_values(entry, now, digest, reused))
            if rows and dialect == "postgresql":
                new = _insert_returning_keys(conn, rows)
                again = _mark_reused(conn, [key for _, key in keyed if key in new])
                for position, key in keyed:
                    added[position] = "duplicate" if key not in new else "reused" if key in again else added[position]
            elif rows:
                # The receiver's hot path on SQLite: positional rows straight to the driver's executemany.
                conn.exec_driver_sql(_SQLITE_INSERT, rows)
            for position in dead:
                # A delivery that can never be processed: kept, and dead-lettered in the same transaction.
                entry = entries[position]
                values = _values(entry, now, hashlib.sha256(entry.body).digest(), False)
                row = dict(zip(_INSERTED, values, strict=True))
                new_id = conn.execute(_insert_one(dialect).values(row)).scalar_one_or_none()
                if new_id is None:
                    added[position] = "duplicate"
                else:
                    add_dead_letter(conn, entry, int(new_id), entry.error or "", now)
        return added

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
            return [_row(r) for r in conn.execute(_pending(installation_id, limit))]

    def claim_due(self, installation_id: str, limit: int) -> tuple[list[InboxRow], float | None]:
        """Claim an installation's next pending rows that are due, in arrival order, as ``claim`` does.

        Return the claimed rows (as claimed) and, when none is due, when the head comes due (None: none
        pends). Nothing passes a row that waits for its retry. One write transaction, where reading the
        rows and claiming them apart cost two (a commit is most of a batch's fixed cost on SQLite).
        """
        now = self._clock.now()
        with self._db.write("claim webhook deliveries") as conn:
            rows = [_row(r) for r in conn.execute(_pending(installation_id, limit))]
            due: list[InboxRow] = []
            for row in rows:
                if row.next_attempt_at is not None and row.next_attempt_at > now:
                    break
                due.append(row)
            if not due:
                return [], rows[0].next_attempt_at if rows else None
            conn.execute(_claim([r.id for r in due]))
        return [replace(r, status="processing", attempts=r.attempts + 1) for r in due], None

    def claim(self, ids: Sequence[int]) -> None:
        """Mark pending rows as being processed, counting the attempt before it is made (a crash counts too)."""
        with self._db.write("claim webhook deliveries") as conn:
            conn.execute(_claim(ids))

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


def _pending(installation_id: str, limit: int) -> Select[Any]:
    return (
        select(webhook_inbox)
        .where(i.installation_id == installation_id, i.status == "pending")
        .order_by(i.id)
        .limit(limit)
    )


def _claim(ids: Sequence[int]) -> Update:
    return (
        update(webhook_inbox)
        .where(i.id.in_(ids), i.status == "pending")
        .values(status="processing", attempts=i.attempts + 1)
    )


_INSERTED: Final = (
    "ns", "installation_id", "event", "transaction_id", "status",
    "body", "attempts", "received_at", "processed_at", "error", "digest", "reused",
)  # fmt: skip
_KEY: Final = ("installation_id", "transaction_id", "event", "digest")  # the de-duplication key (D26)
_Key = tuple[str, str, str, bytes]


def _values(entry: InboxEntry, now: float, digest: bytes, reused: bool) -> tuple[Any, ...]:
    processed = None if entry.status == "pending" else now
    return (entry.ns, entry.installation_id, entry.event, entry.transaction_id, entry.status, entry.body, 0, now,
            processed, entry.error, digest, reused)  # fmt: skip


def _marks(paramstyle: str, count: int) -> str:
    return ", ".join(("?" if paramstyle == "qmark" else "%s",) * count)


_SQLITE_INSERT: Final = f"INSERT INTO webhook_inbox ({', '.join(_INSERTED)}) VALUES ({_marks('qmark', len(_INSERTED))})"
_PG_ROWS: Final = 1000  # rows per statement, well within PostgreSQL's 65,535 parameters


@lru_cache(maxsize=64)
def _pg_insert(count: int) -> str:
    row = f"({_marks('format', len(_INSERTED))})"
    return (
        f"INSERT INTO webhook_inbox ({', '.join(_INSERTED)}) VALUES {', '.join([row] * count)} "
        f"ON CONFLICT ({', '.join(_KEY)}) DO NOTHING RETURNING {', '.join(_KEY)}"
    )


def _insert_returning_keys(conn: Connection, rows: list[tuple[Any, ...]]) -> set[_Key]:
    """Insert rows on PostgreSQL, skipping stored keys; return the keys (with digest) inserted."""
    inserted: set[_Key] = set()
    for start in range(0, len(rows), _PG_ROWS):
        chunk = rows[start : start + _PG_ROWS]
        result = conn.exec_driver_sql(_pg_insert(len(chunk)), tuple(value for row in chunk for value in row))
        inserted.update((r[0], r[1], r[2], bytes(r[3])) for r in result if r[1] is not None and r[2] is not None)
    return inserted


# Rows just inserted whose (installation, transaction id, event) another row holds with another
# body: all but the first of each key are flagged reused, in one statement (PostgreSQL).
_MARK_REUSED: Final = """
UPDATE webhook_inbox w SET reused = true
FROM (
    SELECT installation_id, transaction_id, event, min(id) AS first FROM webhook_inbox
    WHERE (installation_id, transaction_id, event) IN (
        SELECT DISTINCT * FROM unnest(%s::text[], %s::text[], %s::text[])
    )
    GROUP BY 1, 2, 3 HAVING count(*) > 1
) d
WHERE w.installation_id = d.installation_id AND w.transaction_id = d.transaction_id AND w.event = d.event
  AND w.id <> d.first AND NOT w.reused
RETURNING w.installation_id, w.transaction_id, w.event, w.digest
"""


def _mark_reused(conn: Connection, keys: Sequence[_Key]) -> set[_Key]:
    if not keys:
        return set()
    columns = ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys])
    return {(r[0], r[1], r[2], bytes(r[3])) for r in conn.exec_driver_sql(_MARK_REUSED, columns)}


@cache
def _insert_one(dialect: str) -> Insert:
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(webhook_inbox)
    return stmt.on_conflict_do_nothing(index_elements=list(_KEY)).returning(i.id)


def _turn_away_uninstalled(conn: Connection, entries: Sequence[InboxEntry]) -> Sequence[InboxEntry]:
    """Return ``entries`` with those for an uninstalled installation kept as ``unmatched`` instead (issue 12).

    The receiver's directory of installations is a cache, refreshed every few seconds: an
    uninstall in another process (the CLI, another server) is not in it yet. The inbox commit is
    where every delivery meets the database anyway, so the check costs one indexed query per
    batch (a few microseconds on SQLite), in the transaction that stores it: an uninstall that
    committed first always wins.
    """
    ids = {e.installation_id for e in entries if e.installation_id is not None and e.status != "ping"}
    if not ids:
        return entries
    marks = _marks(conn.dialect.paramstyle, len(ids))
    sql = f"SELECT id FROM installations WHERE status = 'uninstalled' AND id IN ({marks})"
    if conn.dialect.name == "sqlite":  # the receiver's hot path: the driver itself, ~6 us against ~35 us
        rows = conn.connection.driver_connection.execute(sql, tuple(ids))  # type: ignore[union-attr]
    else:
        rows = conn.exec_driver_sql(sql, tuple(ids))
    gone = {row[0] for row in rows}
    if not gone:
        return entries
    return [
        InboxEntry(
            e.ns,
            None,
            e.event,
            e.transaction_id,
            "unmatched",
            e.body,
            f"installation {e.installation_id} is uninstalled",
        )
        if e.installation_id in gone and e.status != "ping"
        else e
        for e in entries
    ]


def _existing(conn: Connection, entries: Sequence[InboxEntry]) -> dict[tuple[str, str, str], set[bytes]]:
    """Return, by (installation, transaction id, event), the body digests stored already for ``entries`` (SQLite)."""
    wanted: dict[str, set[str]] = {}
    for e in entries:
        if e.installation_id is not None and e.transaction_id and e.event is not None:
            wanted.setdefault(e.installation_id, set()).add(e.transaction_id)
    found: dict[tuple[str, str, str], set[bytes]] = {}
    paramstyle = conn.dialect.paramstyle
    for installation_id, keys in wanted.items():
        ordered = sorted(keys)
        for start in range(0, len(ordered), _CHUNK):
            chunk = ordered[start : start + _CHUNK]
            # Both columns, so that the unique index answers (a scan would grow with the inbox).
            sql = (
                "SELECT transaction_id, event, digest FROM webhook_inbox WHERE installation_id = "
                f"{_marks(paramstyle, 1)} AND transaction_id IN ({_marks(paramstyle, len(chunk))})"
            )
            for txid, event, digest in conn.exec_driver_sql(sql, (installation_id, *chunk)):
                if event is not None:
                    found.setdefault((installation_id, txid, event), set()).add(digest)
    return found
