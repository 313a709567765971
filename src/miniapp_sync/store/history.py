"""Record history (D39): the change rows a write appends, and the timeline and purge that read them.

A batch of record writes decides every code in memory first (``record_plan.plan_writes``); its history is
taken from that plan, for the codes it writes only: an unchanged or stale record appends nothing.
A change row holds the record's state before the batch against its state after it, so a code
written twice in one batch gets one row. ``old`` and ``new`` hold only the fields that changed
(a field absent on one side is absent from that side); a creation's ``new`` is the whole record,
reused from the canonical JSON the plan has already encoded, and its ``old`` is null. The rows
are inserted in the batch's transaction: on SQLite by multi-row statements on the driver, on
PostgreSQL by COPY for a big batch (D35), else by one executemany.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Final, Literal

import orjson
from sqlalchemy import Connection, TextClause, delete, insert, select, text

from miniapp_sync.store.driver import Statement, run_all
from miniapp_sync.store.model import RecordSource
from miniapp_sync.store.tables import record_history

if TYPE_CHECKING:
    from miniapp_sync.store.store import Store

ChangeKind = Literal["created", "updated", "deleted"]
DEFAULT_RETENTION_DAYS: Final = 30.0

COLUMNS: Final = tuple(c.name for c in record_history.c if c.name != "id")
_JSON: Final = frozenset({"old", "new"})
_SQLITE_ROWS: Final = (32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999) // len(COLUMNS)
_CANONICAL: Final = orjson.OPT_SORT_KEYS
_PURGE_CHUNK: Final = 5000


@dataclass(frozen=True, slots=True)
class RecordChange:
    """One change of a record: what changed it (a bulk run or a webhook delivery) and the fields it changed."""

    id: int
    installation_id: str
    content_type: str
    code: str
    kind: ChangeKind
    version: str | None
    source: RecordSource
    source_id: str | None  # the bulk run's id, or the inbox delivery's id
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    changed_at: float


def _exact(a: Any, b: Any) -> bool:
    # Python's == takes True for 1 and 1.0 for 1, which JSON (and the content hash) tell apart.
    if type(a) is not type(b):
        return False
    if isinstance(a, dict | list):
        return orjson.dumps(a, option=_CANONICAL) == orjson.dumps(b, option=_CANONICAL)
    return bool(a == b)


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the old and the new values of the top-level fields that differ between two records."""
    # Compared with == (at C speed when the values are hashable): a bulk re-sync of changed
    # records diffs ~20 fields each, and this is ~5x cheaper than a loop that checks types too.
    # == takes 1 for 1.0 and for true, which JSON (and the content hash) tell apart: such a
    # field shows as changed only when nothing else did, through the exact comparison.
    try:
        after = dict(new.items() - old.items())
    except TypeError:  # a list or an object among the values: field by field
        after = {key: value for key, value in new.items() if key not in old or old[key] != value}
    before = {key: was for key, was in old.items() if key in after or key not in new}
    if not before and not after:
        for key, value in new.items():
            if not _exact(old[key], value):
                before[key], after[key] = old[key], value
    return before, after


def change_rows(
    written: Iterable[str],
    before: Mapping[str, dict[str, Any] | None],
    after: Mapping[str, Mapping[str, Any]],
    texts: Mapping[str, bytes],
    *,
    source: RecordSource,
    source_ids: Mapping[str, str | None],
    now: float,
) -> list[tuple[Any, ...]]:
    """Return a change row (``COLUMNS``, JSON as encoded bytes) per written code.

    ``before`` holds the stored data of each code that existed before the batch; ``after`` the
    rows the batch upserts (their ``data`` not yet replaced by its encoding); ``texts`` each
    written code's canonical JSON.
    """
    out: list[tuple[Any, ...]] = []
    for code in written:
        row = after[code]
        old_data = before.get(code)
        if old_data is None:
            kind, old, new = "created", None, texts[code]
        else:
            changed_old, changed_new = diff(old_data, row["data"])
            kind, old, new = "updated", orjson.dumps(changed_old), orjson.dumps(changed_new)
        out.append(
            (row["installation_id"], row["content_type"], code, kind, row["version"], source,
             source_ids.get(code), old, new, now)
        )  # fmt: skip
    return out


def deletion_rows(
    installation_id: str, content_type: str, codes: Iterable[str], *, run_id: str | None, now: float
) -> list[tuple[Any, ...]]:
    """Return the change rows of records a bulk run found deleted (D23): no fields, the run as source."""
    return [(installation_id, content_type, code, "deleted", None, "bulk", run_id, None, None, now) for code in codes]


@cache
def _sqlite_insert(count: int) -> str:
    row = f"({', '.join('CAST(? AS TEXT)' if name in _JSON else '?' for name in COLUMNS)})"
    return f"INSERT INTO record_history ({', '.join(COLUMNS)}) VALUES {', '.join([row] * count)}"


_PG_INSERT: Final[TextClause] = text(
    f"INSERT INTO record_history ({', '.join(COLUMNS)}) VALUES "
    f"({', '.join(f'CAST(:{name} AS jsonb)' if name in _JSON else f':{name}' for name in COLUMNS)})"
)


def sqlite_inserts(rows: Sequence[tuple[Any, ...]]) -> list[Statement]:
    """Return the SQLite statements that insert change rows: multi-row, within the bound-variable limit."""
    return [
        (_sqlite_insert(len(chunk)), tuple(itertools.chain.from_iterable(chunk)))
        for chunk in (rows[start : start + _SQLITE_ROWS] for start in range(0, len(rows), _SQLITE_ROWS))
    ]


def insert_changes(conn: Connection, rows: Sequence[tuple[Any, ...]], *, copy: bool) -> None:
    """Insert change rows inside the caller's transaction; ``copy``: by COPY on PostgreSQL (a big batch)."""
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        run_all(conn, sqlite_inserts(rows))
    elif copy:
        from miniapp_sync.store.pg_copy import copy_upsert  # psycopg: only PostgreSQL stores pay its import

        copy_upsert(conn, insert(record_history), rows)
    else:
        conn.execute(_PG_INSERT, [_text_json(dict(zip(COLUMNS, row, strict=True))) for row in rows])


def _text_json(row: dict[str, Any]) -> dict[str, Any]:
    for name in _JSON:
        if row[name] is not None:
            row[name] = row[name].decode()
    return row


class History:
    """The record_history table, on the store's database: timelines and the purge."""

    def __init__(self, store: Store) -> None:
        self._db = store.database
        self._clock = store.clock
        self._retention = store.history_retention

    def timeline(
        self, installation_id: str, content_type: str, code: str, *, limit: int = 100, offset: int = 0
    ) -> list[RecordChange]:
        """Return a record's changes, newest first."""
        h = record_history.c
        query = (
            select(record_history)
            .where(h.installation_id == installation_id, h.content_type == content_type, h.code == code)
            .order_by(h.id.desc())
            .limit(limit)
            .offset(offset)
        )
        with self._db.read("read a record's history") as conn:
            return [RecordChange(**row._mapping) for row in conn.execute(query)]

    def purge(self) -> int:
        """Forget change rows older than the retention (all of them when history is off)."""
        before = self._clock.now() - (self._retention or 0.0)
        h = record_history.c
        purged = 0
        while True:
            # Ids grow with time: the oldest rows come first by id, read from the primary key a
            # chunk at a time, each chunk its own short transaction (webhooks wait for none long).
            with self._db.write("purge old record history") as conn:
                head = conn.execute(select(h.id, h.changed_at).order_by(h.id).limit(_PURGE_CHUNK)).all()
                old = [row.id for row in itertools.takewhile(lambda row: row.changed_at < before, head)]
                if old:
                    conn.execute(delete(record_history).where(h.id <= old[-1]))
            purged += len(old)
            if len(old) < _PURGE_CHUNK:
                return purged
