"""Deliveries into the inbox: the receiver's group-commit insert (D25), de-duplicated by key and body (D26).

Resends (same installation, event, transaction id and body) are left out, a reused key with
another body is flagged, a delivery that can never be processed is kept and dead-lettered in the
same transaction, and one for an installation uninstalled meanwhile is kept as ``unmatched``.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from functools import cache, lru_cache
from typing import Any, Final

from sqlalchemy import Connection
from sqlalchemy.sql.dml import Insert

from miniapp_sync.store import dialects
from miniapp_sync.store.driver import on_driver
from miniapp_sync.store.processing import dead_letter_delivery
from miniapp_sync.store.webhook_model import Added, InboxEntry
from miniapp_sync.store.webhook_tables import webhook_inbox

_CHUNK: Final = 500  # values per IN (...) list

i = webhook_inbox.c


def insert_entries(conn: Connection, entries: Sequence[InboxEntry], now: float) -> list[Added]:
    """Insert deliveries in the caller's transaction; return, per entry: new, a resend, or a reused key."""
    added: list[Added] = ["new"] * len(entries)
    rows: list[tuple[Any, ...]] = []
    keyed: list[tuple[int, _Key]] = []  # (position, key with digest) of each keyed row inserted
    dead: list[int] = []
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
        # The receiver's hot path on SQLite: multi-row statements on the driver itself (store/driver.py),
        # as the processor writes; SQLAlchemy's execution layer cost more than the rows.
        for start in range(0, len(rows), _SQLITE_ROWS):
            chunk = rows[start : start + _SQLITE_ROWS]
            on_driver(conn, _sqlite_insert(len(chunk)), tuple(itertools.chain.from_iterable(chunk)))
    for position in dead:
        # A delivery that can never be processed: kept, and dead-lettered in the same transaction.
        entry = entries[position]
        values = _values(entry, now, hashlib.sha256(entry.body).digest(), False)
        row = dict(zip(_INSERTED, values, strict=True))
        new_id = conn.execute(_insert_one(dialect).values(row)).scalar_one_or_none()
        if new_id is None:
            added[position] = "duplicate"
        else:
            dead_letter_delivery(conn, entry, int(new_id), entry.error or "", now)
    return added


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


_SQLITE_ROWS: Final = 999 // len(_INSERTED)  # rows per statement within any SQLite's bound-variable limit


@lru_cache(maxsize=64)
def _sqlite_insert(count: int) -> str:
    row = f"({_marks('qmark', len(_INSERTED))})"
    return f"INSERT INTO webhook_inbox ({', '.join(_INSERTED)}) VALUES {', '.join([row] * count)}"


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
    stmt = dialects.insert(dialect, webhook_inbox)
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
    # SQLite, the receiver's hot path: the driver itself, ~6 us against ~35 us (its errors wrapped, as SQLAlchemy's).
    sqlite = conn.dialect.name == "sqlite"
    rows = on_driver(conn, sql, tuple(ids)) if sqlite else conn.exec_driver_sql(sql, tuple(ids))
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
    for installation_id, keys in wanted.items():
        ordered = sorted(keys)
        for start in range(0, len(ordered), _CHUNK):
            chunk = ordered[start : start + _CHUNK]
            # Both columns, so that the unique index answers (a scan would grow with the inbox).
            sql = (
                "SELECT transaction_id, event, digest FROM webhook_inbox WHERE installation_id = "
                f"? AND transaction_id IN ({_marks('qmark', len(chunk))})"
            )
            for txid, event, digest in on_driver(conn, sql, (installation_id, *chunk)):
                if event is not None:
                    found.setdefault((installation_id, txid, event), set()).add(digest)
    return found
