"""One processing transaction: what the processor reads and writes while it applies inbox rows.

Record reads and writes (D20-D22), the trigger event with its deliveries (the outbox), and the
rows' new states all go through one connection, so they commit together or not at all. The
statements are built once: building a SQLAlchemy statement per call cost more than running it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import replace
from functools import cache
from operator import itemgetter
from typing import Any, Final

import orjson
from sqlalchemy import Connection, Select, Update, bindparam, select, text, update

from miniapp_sync import exactjson
from miniapp_sync.errors import StoreError
from miniapp_sync.store import records as rec
from miniapp_sync.store.dead_letters import insert_dead_letter
from miniapp_sync.store.driver import on_driver, on_sqlite
from miniapp_sync.store.model import RecordWrite, StoredRecord, WriteResult
from miniapp_sync.store.outbox import emit, subscribers_of
from miniapp_sync.store.tables import records
from miniapp_sync.store.webhook_model import InboxEntry, InboxRow, dead_letter_payload
from miniapp_sync.store.webhook_tables import webhook_inbox

r = records.c
i = webhook_inbox.c
_SAME_RECORD = (
    r.installation_id == bindparam("p_installation_id"),
    r.content_type == bindparam("p_content_type"),
)
_RECORD = select(records).where(*_SAME_RECORD, r.code == bindparam("p_code"))
_CODES = r.code.in_(bindparam("p_codes", expanding=True))
_RECORDS = select(records).where(*_SAME_RECORD, _CODES)
_CHUNK = 500  # codes per IN (...) list
_NAME: Final = re.compile(r"[A-Za-z_][\w:.-]*")  # content types and field names spliced into SQL
_DONE = (
    update(webhook_inbox)
    .where(i.id.in_(bindparam("p_ids", expanding=True)))
    .values(status="done", processed_at=bindparam("p_now"), next_attempt_at=None, error=None)
)
# On SQLite the statements a batch always runs go to the driver (store/driver.py), their codes
# and ids as one JSON array: SQLAlchemy's execution layer and its expanding IN lists cost more
# than the statements, and every one of them runs holding the writer lock that acknowledgements
# wait for. The columns of _SQLITE_RECORDS are StoredRecord's fields, in its order.
_SQLITE_RECORDS: Final = (
    f"SELECT {', '.join(c.name for c in records.c)} FROM records "
    "WHERE installation_id = ? AND content_type = ? AND code IN (SELECT value FROM json_each(?))"
)
_SQLITE_DONE: Final = (
    "UPDATE webhook_inbox SET status = 'done', processed_at = ?, next_attempt_at = NULL, error = NULL "
    "WHERE id IN (SELECT value FROM json_each(?))"
)
# The claim's, likewise. The columns of _SQLITE_PENDING are InboxRow's fields, in its order.
_SQLITE_PENDING: Final = (
    f"SELECT {', '.join(c.name for c in webhook_inbox.c)} FROM webhook_inbox "
    "WHERE installation_id = ? AND status = 'pending' ORDER BY id LIMIT ?"
)
_SQLITE_CLAIM: Final = (
    "UPDATE webhook_inbox SET status = 'processing', attempts = attempts + 1 "
    "WHERE id IN (SELECT value FROM json_each(?)) AND status = 'pending'"
)
_FAIL: Update = (
    update(webhook_inbox)
    .where(i.id == bindparam("p_id"))
    .values(status="failed", processed_at=bindparam("p_now"), error=bindparam("p_reason"))
)


def _chunks(codes: Collection[str]) -> Iterator[list[str]]:
    ordered = sorted(codes)
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start : start + _CHUNK]


def _stored(row: tuple[Any, ...]) -> StoredRecord:
    """Build a StoredRecord from a ``records`` row as the SQLite driver gives it (JSON text, 0/1 booleans)."""
    (installation_id, content_type, code, data, content_hash, version, source, partial, deleted, *rest) = row
    return StoredRecord(
        installation_id, content_type, code, exactjson.loads(data), content_hash, version, source,
        bool(partial), bool(deleted), *rest,
    )  # fmt: skip


def pending_rows(installation_id: str, limit: int) -> Select[Any]:
    """Return the query of an installation's first ``limit`` pending rows, in arrival order."""
    return (
        select(webhook_inbox)
        .where(i.installation_id == installation_id, i.status == "pending")
        .order_by(i.id)
        .limit(limit)
    )


def to_claim(ids: Sequence[int]) -> Update:
    """Return the statement that claims pending rows, counting the attempt before it is made."""
    return (
        update(webhook_inbox)
        .where(i.id.in_(ids), i.status == "pending")
        .values(status="processing", attempts=i.attempts + 1)
    )


def claim_due(conn: Connection, installation_id: str, limit: int, now: float) -> tuple[list[InboxRow], float | None]:
    """Claim an installation's next pending rows that are due inside the caller's transaction (``Inbox.claim_due``)."""
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        rows = [_inbox_row(r) for r in on_driver(conn, _SQLITE_PENDING, (installation_id, limit))]
    else:
        rows = [InboxRow(**r._mapping) for r in conn.execute(pending_rows(installation_id, limit))]
    due: list[InboxRow] = []
    for row in rows:
        if row.next_attempt_at is not None and row.next_attempt_at > now:
            break
        due.append(row)
    if not due:
        return [], rows[0].next_attempt_at if rows else None
    if sqlite:
        on_driver(conn, _SQLITE_CLAIM, (orjson.dumps([r.id for r in due]).decode(),))
    else:
        conn.execute(to_claim([r.id for r in due]))
    return [replace(r, status="processing", attempts=r.attempts + 1) for r in due], None


def _inbox_row(row: tuple[Any, ...]) -> InboxRow:
    id, ns, installation, event, key, status, body, attempts, received, next_at, processed, error, digest, reused = row
    # SQLite hands a Boolean back as 0 or 1.
    return InboxRow(
        id, ns, installation, event, key, status, body, attempts, received, next_at, processed, error, digest,
        bool(reused),
    )  # fmt: skip


def lookup_key(dialect: str, field: str) -> str:
    """Return the SQL of a record's ``data[field]`` lower-cased, as migration 0005's indexes spell it."""
    return f"lower(json_extract(data, '$.{field}'))" if dialect == "sqlite" else f"lower(data ->> '{field}')"


@cache
def _by_field(dialect: str, content_type: str, field: str) -> Select[Any]:
    # D28 finds a delivery's customer by email, then phone. Migration 0005 indexes those keys of
    # core:customer records; an index serves only a query that spells its expression and its
    # predicate (the content type, a literal) exactly as it does. Without it every new customer
    # read all the stored ones: 84 ms a miss at 100,000 customers on SQLite, write lock held.
    if not _NAME.fullmatch(content_type) or not _NAME.fullmatch(field):
        raise StoreError(f"cannot look {content_type!r} records up by {field!r}: not a plain name")
    return select(records).where(
        r.installation_id == bindparam("p_installation_id"),
        text(f"content_type = '{content_type}'"),
        r.deleted.is_(False),
        text(f"{lookup_key(dialect, field)} = :p_value"),
    )


def dead_letter_delivery(conn: Connection, row: InboxRow | InboxEntry, inbox_id: int, reason: str, now: float) -> int:
    """Dead-letter a delivery (kind webhook) inside the caller's transaction; return the dead letter's id."""
    if row.installation_id is None:
        raise StoreError(f"cannot dead-letter webhook delivery {inbox_id}: it belongs to no installation")
    received = row.received_at if isinstance(row, InboxRow) else now
    return insert_dead_letter(
        conn, row.installation_id, kind="webhook", source=row.event or "(no event)",
        payload=dead_letter_payload(row, inbox_id, received), reason=reason, run_id=None, now=now,
    )  # fmt: skip


class Processing:
    """Read and write records, emit trigger events and settle inbox rows, inside one transaction."""

    def __init__(self, conn: Connection, now: float, *, history: bool = False) -> None:
        self.conn = conn
        self.now = now
        self.history = history  # append a change row per changed record (D39)
        self._subscribers: dict[tuple[str, str], list[str]] = {}
        self._done: list[int] = []

    def record(self, installation_id: str, content_type: str, code: str) -> StoredRecord | None:
        """Return a stored record, or None."""
        params = {"p_installation_id": installation_id, "p_content_type": content_type, "p_code": code}
        row = self.conn.execute(_RECORD, params).first()
        return None if row is None else rec.to_record(row)

    def records(self, installation_id: str, content_type: str, codes: Collection[str]) -> dict[str, StoredRecord]:
        """Return the stored records of these codes, by code (absent codes are left out)."""
        found: dict[str, StoredRecord] = {}
        if self.conn.dialect.name == "sqlite":
            for chunk in _chunks(codes):
                values = (installation_id, content_type, orjson.dumps(chunk).decode())
                found.update((row[2], _stored(row)) for row in on_driver(self.conn, _SQLITE_RECORDS, values))
            return found
        for chunk in _chunks(codes):
            params = {"p_installation_id": installation_id, "p_content_type": content_type, "p_codes": chunk}
            found.update((row.code, rec.to_record(row)) for row in self.conn.execute(_RECORDS, params))
        return found

    def find_by_field(self, installation_id: str, content_type: str, field: str, value: str) -> StoredRecord | None:
        """Return the live record, first by code, whose ``data[field]`` equals ``value`` (case-insensitive)."""
        params = {"p_installation_id": installation_id, "p_value": value.lower()}
        query = _by_field(self.conn.dialect.name, content_type, field)
        # All the matches, usually one, then the first by code: ORDER BY code would lead the planner
        # to walk the primary key in code order instead of probing the lookup index.
        if self.conn.dialect.name == "sqlite":  # every new customer asks twice, holding the writer lock
            found = on_sqlite(self.conn, query, params).fetchall()
            return _stored(min(found, key=itemgetter(2))) if found else None
        rows = self.conn.execute(query, params).all()
        return rec.to_record(min(rows, key=lambda row: row.code)) if rows else None

    def write(self, installation_id: str, content_type: str, writes: Sequence[RecordWrite]) -> WriteResult:
        """Apply webhook writes (D20-D22) inside this transaction; each write's ``origin`` is its delivery."""
        return rec.write_records(
            self.conn,
            installation_id,
            content_type,
            writes,
            source="webhook",
            run_id=None,
            checkpoint=None,
            now=self.now,
            history=self.history,
        )

    def emit(self, tenant: str, events: Sequence[tuple[InboxRow, dict[str, Any]]]) -> None:
        """Add the rows' trigger events to the outbox, each with a delivery per subscriber (D27)."""
        for ns in {row.ns for row, _ in events}:
            if (tenant, ns) not in self._subscribers:
                self._subscribers[(tenant, ns)] = subscribers_of(self.conn, tenant, ns)
        emit(self.conn, tenant, events, now=self.now, subscribers=self._subscribers)

    def claim_due(self, installation_id: str, limit: int) -> tuple[list[InboxRow], float | None]:
        """Claim an installation's next due rows in this transaction, as ``Inbox.claim_due`` does on its own."""
        return claim_due(self.conn, installation_id, limit, self.now)

    def done(self, row: InboxRow) -> None:
        """Mark a row processed (with the others, when the transaction finishes)."""
        self._done.append(row.id)

    def fail(self, row: InboxRow, reason: str, *, dead_letter: bool = True) -> int | None:
        """Mark a row failed and (unless it is a replay's) dead-letter it; return the dead letter's id."""
        self.conn.execute(_FAIL, {"p_id": row.id, "p_now": self.now, "p_reason": reason})
        return dead_letter_delivery(self.conn, row, row.id, reason, self.now) if dead_letter else None

    def finish(self) -> None:
        """Write what was deferred to the end of the transaction: the rows marked done."""
        if not self._done:
            return
        if self.conn.dialect.name == "sqlite":
            on_driver(self.conn, _SQLITE_DONE, (self.now, orjson.dumps(self._done).decode()))
        else:
            self.conn.execute(_DONE, {"p_ids": self._done, "p_now": self.now})
        self._done = []
