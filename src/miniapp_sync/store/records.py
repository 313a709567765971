"""Record writes and reads (D20-D23): decide per record in memory, then write the batch at once.

A batch is one transaction: one SELECT of the stored rows for the batch's codes, a decision per
write (stale, unchanged, created, updated), one upsert for what changed (on PostgreSQL, COPY
through a staging table, or executemany for a small batch; multi-row statements on SQLite), one
UPDATE that marks the rest as seen, and the resource checkpoint (D6). Writes of one code later
in the same batch see the outcome of the earlier ones; each code is upserted once, with its
final state. The decision is ``record_plan``'s, the lookups and seen-marks ``record_rows``'.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import cache, lru_cache
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Connection, Row, Select, func, select, update
from sqlalchemy.sql.dml import Insert

from miniapp_sync.errors import StoreError, preview
from miniapp_sync.store import dialects
from miniapp_sync.store.checkpoints import save_checkpoint
from miniapp_sync.store.driver import Statement, run_all
from miniapp_sync.store.history import change_rows, deletion_rows, insert_changes, sqlite_inserts
from miniapp_sync.store.model import RECORD_SOURCES, RecordSource, RecordWrite, StoredRecord, WriteResult
from miniapp_sync.store.record_plan import Current, Plan, plan_writes
from miniapp_sync.store.record_rows import load, lock, mark_seen, sqlite_marks
from miniapp_sync.store.rows import Rows
from miniapp_sync.store.tables import records

if TYPE_CHECKING:
    from concurrent.futures import Future

_COLUMNS: Final = tuple(c.name for c in records.c)
_KEEP_ON_UPDATE: Final = frozenset({"installation_id", "content_type", "code", "created_at"})
# Rows per SQLite upsert statement, within the bound-variable limit (999 before SQLite 3.32).
_SQLITE_ROWS: Final = (32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999) // len(_COLUMNS)


@cache
def _record_upsert(dialect: str) -> Insert:
    stmt = dialects.insert(dialect, records)
    changes: dict[str, Any] = {c.name: stmt.excluded[c.name] for c in records.c if c.name not in _KEEP_ON_UPDATE}
    changes["run_id"] = func.coalesce(stmt.excluded.run_id, records.c.run_id)  # a webhook keeps the run's id
    return stmt.on_conflict_do_update(index_elements=list(records.primary_key), set_=changes)


@lru_cache(maxsize=16)
def _sqlite_record_upsert(count: int) -> str:
    """Return _record_upsert's statement for SQLite with ``count`` rows of positional values."""
    changes = ", ".join(
        "run_id = coalesce(excluded.run_id, records.run_id)" if name == "run_id" else f"{name} = excluded.{name}"
        for name in _COLUMNS
        if name not in _KEEP_ON_UPDATE
    )
    # The data arrives as the UTF-8 bytes of its JSON: cast in SQLite, it is stored as that text
    # without a decode to str and the driver's encode back (~0.3 µs a row).
    row = f"({', '.join('CAST(? AS TEXT)' if name == 'data' else '?' for name in _COLUMNS)})"
    return (
        f"INSERT INTO records ({', '.join(_COLUMNS)}) VALUES {', '.join([row] * count)} "
        f"ON CONFLICT (installation_id, content_type, code) DO UPDATE SET {changes}"
    )


# Rows from which a PostgreSQL batch is written by COPY (D35). COPY costs three round trips
# whatever the size (the staging table's check, the copy, the insert) where executemany
# pipelines a statement per row. In bench/store.py (write_records, new and changed records)
# executemany is ~8% faster at 20-30 rows, the two are about even at 40-64 (COPY 1.0-1.2×), and
# COPY is 1.2-1.3× at 100-200 rows, 1.4-1.8× at 500. Webhook batches, a row or two, stay on
# executemany.
_COPY_ROWS: Final = 50


def _postgres_upsert_records(conn: Connection, plan: Plan) -> None:
    rows = list(plan.rows.values())
    if len(rows) < _COPY_ROWS:
        conn.execute(_record_upsert(conn.dialect.name), rows)
        return
    from miniapp_sync.store.pg_copy import copy_upsert  # psycopg: only PostgreSQL stores pay its import

    for row in rows:
        row["data"] = plan.texts[row["code"]]  # the canonical JSON, as on SQLite: encoded once
    copy_upsert(conn, _record_upsert(conn.dialect.name), map(itemgetter(*_COLUMNS), rows))


def _sqlite_upserts(plan: Plan) -> list[Statement]:
    # SQLAlchemy's executemany costs ~10 µs a row in bind processing, and sqlite3's executemany
    # releases and retakes the GIL around every row, which stalls behind a busy event loop
    # thread. Multi-row statements with the values already flat cost a step per few hundred rows.
    # The data stored is the canonical JSON the hash was taken of: serialised once, and a JSON
    # object's key order carries no meaning (PostgreSQL's JSONB does not keep it either).
    columns = itemgetter(*_COLUMNS)
    rows = list(plan.rows.values())
    statements: list[Statement] = []
    for start in range(0, len(rows), _SQLITE_ROWS):
        chunk = rows[start : start + _SQLITE_ROWS]
        values: list[Any] = []
        for row in chunk:
            row["data"] = plan.texts[row["code"]]
            values += columns(row)
        statements.append((_sqlite_record_upsert(len(chunk)), tuple(values)))
    return statements


def write_records(
    conn: Connection,
    installation_id: str,
    content_type: str,
    writes: Sequence[RecordWrite],
    *,
    source: RecordSource,
    run_id: str | None,
    checkpoint: tuple[str, dict[str, Any]] | None,
    now: float,
    history: bool = False,
    later: list[Statement] | None = None,
) -> WriteResult:
    """Apply a batch of writes inside the caller's transaction and return what each did.

    With ``history``, each created or changed record also gets its change row (D39), whose
    source is the write's ``origin`` (a webhook delivery) or else ``run_id``. With ``later``
    (SQLite), the batch is decided and its checkpoint saved now, and the statements that write
    its records, change rows and seen-marks are appended there for the caller to run in this
    transaction before it commits (``driver.run_all``), on another thread if it likes.
    """
    if source not in RECORD_SOURCES:
        raise StoreError(f"unknown record source {source!r}; expected one of {sorted(RECORD_SOURCES)}")
    lock(conn, installation_id, content_type)
    codes = list(dict.fromkeys(w.code for w in writes))
    for code in codes:
        if not isinstance(code, str) or not code:
            raise StoreError(
                f"cannot write a {content_type} record: code must be a non-empty string, found {preview(code)}"
            )
    with_data = any(w.merge for w in writes)
    stored = load(conn, installation_id, content_type, codes, with_data=with_data) if codes else {}
    partial = [code for code, known in stored.items() if known.partial and not known.deleted]
    if partial and not with_data:  # a full write may complete them (D22): their data is needed, rarely
        stored.update(load(conn, installation_id, content_type, partial, with_data=True))
    plan = plan_writes(
        stored,
        writes,
        installation_id=installation_id,
        content_type=content_type,
        source=source,
        run_id=run_id,
        now=now,
        repeats=len(codes) < len(writes),
    )
    key = (installation_id, content_type)
    changes = _changes(conn, key, stored, plan, writes, source=source, run_id=run_id, now=now) if history else []
    params = {"p_installation_id": installation_id, "p_content_type": content_type, "p_now": now, "p_run_id": run_id}
    # A code rewritten later in the batch already gets seen_at (and webhook_at) from the upsert.
    marks = [
        (untouched, by_webhook)
        for group, by_webhook in ((plan.seen, False), (plan.seen_by_webhook, True))
        if (untouched := [code for code in dict.fromkeys(group) if code not in plan.rows])
    ]
    if conn.dialect.name == "sqlite":
        statements = _sqlite_upserts(plan) + sqlite_inserts(changes)
        for untouched, by_webhook in marks:
            statements += sqlite_marks(untouched, params, by_webhook=by_webhook)
        if later is None:
            run_all(conn, statements)
        else:
            later += statements
    else:
        if plan.rows:
            _postgres_upsert_records(conn, plan)
        insert_changes(conn, changes, copy=len(changes) >= _COPY_ROWS)
        for untouched, by_webhook in marks:
            mark_seen(conn, untouched, params, by_webhook=by_webhook)
    if checkpoint is not None:
        resource, state = checkpoint
        save_checkpoint(conn, installation_id, resource, state, run_id=run_id, now=now)
    return WriteResult(plan.created, plan.updated, plan.unchanged, plan.stale, list(plan.written), plan.written)


def _changes(
    conn: Connection,
    key: tuple[str, str],
    stored: dict[str, Current],
    plan: Plan,
    writes: Sequence[RecordWrite],
    *,
    source: RecordSource,
    run_id: str | None,
    now: float,
) -> list[tuple[Any, ...]]:
    """Return the change rows of a decided batch (D39), before its rows are written."""
    if not plan.written:
        return []
    # The stored data is read only for records whose content changed, and only when the batch
    # did not read it already (a merge, a partial record): an unchanged re-sync reads none.
    missing = [code for code in plan.written if code in stored and stored[code].data is None]
    if missing:
        stored.update(load(conn, *key, missing, with_data=True))
    before = {code: stored[code].data for code in plan.written if code in stored}
    origins = (
        {w.code: w.origin or run_id for w in writes} if source == "webhook" else dict.fromkeys(plan.written, run_id)
    )
    return change_rows(plan.written, before, plan.rows, plan.texts, source=source, source_ids=origins, now=now)


def to_record(row: Row[Any]) -> StoredRecord:
    """Build a StoredRecord from a full ``records`` row (its columns are the dataclass's fields)."""
    return StoredRecord(**row._mapping)


def soft_delete_unseen(
    conn: Connection,
    installation_id: str,
    content_type: str,
    *,
    since: float,
    now: float,
    run_id: str | None = None,
    history: bool = False,
) -> int:
    """Mark deleted the records neither seen nor written since ``since`` (D23); return how many.

    With ``history``, each gets a ``deleted`` change row whose source is ``run_id`` (D39).
    """
    lock(conn, installation_id, content_type)
    r = records.c
    stmt = (
        update(records)
        .where(
            r.installation_id == installation_id,
            r.content_type == content_type,
            r.seen_at < since,
            r.updated_at < since,
            r.deleted.is_(False),
        )
        .values(deleted=True, updated_at=now)
    )
    if not history:
        return conn.execute(stmt).rowcount
    codes = conn.execute(stmt.returning(r.code)).scalars().all()
    insert_changes(conn, deletion_rows(installation_id, content_type, codes, run_id=run_id, now=now), copy=False)
    return len(codes)


def _writing(content_type: str, installation_id: str) -> str:
    return f"write {content_type} records of installation {installation_id!r}"


def _matching(
    query: Select[Any], installation_id: str, content_type: str | None, code: str | None, include_deleted: bool
) -> Select[Any]:
    """Narrow a query of ``records`` to an installation's (content type's, code's) rows, deleted ones when asked."""
    r = records.c
    query = query.where(r.installation_id == installation_id)
    if content_type is not None:
        query = query.where(r.content_type == content_type)
    if code is not None:
        query = query.where(r.code == code)
    if not include_deleted:
        query = query.where(r.deleted.is_(False))
    return query


class RecordRows(Rows):
    """The Store's records: each method a transaction of its own around this module's functions."""

    def write_records(
        self,
        installation_id: str,
        content_type: str,
        writes: Sequence[RecordWrite],
        *,
        source: RecordSource,
        run_id: str | None = None,
        checkpoint: tuple[str, dict[str, Any]] | None = None,
    ) -> WriteResult:
        """Upsert a batch of records and save the resource checkpoint, all in one transaction (D6, D20-D22)."""
        with self._db.write(_writing(content_type, installation_id)) as conn:
            return self._write_records(conn, installation_id, content_type, writes, source, run_id, checkpoint)

    def stage_records(
        self,
        installation_id: str,
        content_type: str,
        writes: Sequence[RecordWrite],
        *,
        source: RecordSource,
        run_id: str | None = None,
        checkpoint: tuple[str, dict[str, Any]] | None = None,
        durable: bool = True,
    ) -> tuple[WriteResult, Future[None]]:
        """``write_records`` decided on this thread, written and committed on the store's committer thread.

        Return what the batch does once committed, and the commit's future: until it is done the
        batch is not durable, and every other write waits for it (``Database.write_staged``).
        On SQLite the batch's record, history and seen-mark statements run on the committer
        thread too: SQLite runs them without the GIL, so a bulk run's event loop fetches, decodes
        and maps its next pages meanwhile (20,000 products in process, event-loop thread CPU a
        record: an initial import ~32 -> ~22 µs, a re-sync ~25 -> ~21; the process's CPU the same).
        What a batch decides (its lookup, its plan, its checkpoint) stays here, so an error in it
        is raised here, as before; an error in its statements is raised by the future. Departs
        from D35 ("written on the event loop's thread"): that was measured with the statements
        on SQLAlchemy, whose Python work contended for the GIL; the driver's statements do not.

        ``durable=False`` (SQLite): the commit skips its fsync, as ``Database.write``'s does. For a
        bulk batch that is safe because its checkpoint is in the same transaction (D6): a power
        cut can only take back the last batches with the checkpoint that covers them, so the run
        resumes before them and writes them again (upserts, D20); a crashed process loses
        nothing, and the next durable commit (the run's progress, every second; the resource's
        last batch) makes every earlier one durable too.
        """
        later: list[Statement] = []
        return self._db.write_staged(
            _writing(content_type, installation_id),
            lambda conn: self._write_records(
                conn, installation_id, content_type, writes, source, run_id, checkpoint, later
            ),
            lambda conn: run_all(conn, later),
            durable=durable,
        )

    def _write_records(
        self,
        conn: Connection,
        installation_id: str,
        content_type: str,
        writes: Sequence[RecordWrite],
        source: RecordSource,
        run_id: str | None,
        checkpoint: tuple[str, dict[str, Any]] | None,
        later: list[Statement] | None = None,
    ) -> WriteResult:
        return write_records(
            conn,
            installation_id,
            content_type,
            writes,
            source=source,
            run_id=run_id,
            checkpoint=checkpoint,
            now=self._clock.now(),
            history=self._history_days > 0,
            later=later,
        )

    def get_record(self, installation_id: str, content_type: str, code: str) -> StoredRecord | None:
        """Return one stored record (soft-deleted ones included), or None."""
        r = records.c
        query = select(records).where(
            r.installation_id == installation_id, r.content_type == content_type, r.code == code
        )
        with self._db.read("read a record") as conn:
            row = conn.execute(query).first()
        return None if row is None else to_record(row)

    def list_records(
        self,
        installation_id: str,
        content_type: str | None = None,
        *,
        limit: int = 100,
        offset: int = 0,
        include_deleted: bool = False,
        code: str | None = None,
    ) -> list[StoredRecord]:
        """Return a page of records ordered by content type and code (of one code when given)."""
        r = records.c
        query = _matching(select(records), installation_id, content_type, code, include_deleted)
        query = query.order_by(r.content_type, r.code).limit(limit).offset(offset)
        with self._db.read("list records") as conn:
            return [to_record(row) for row in conn.execute(query)]

    def count_records(
        self,
        installation_id: str,
        content_type: str | None = None,
        *,
        include_deleted: bool = False,
        code: str | None = None,
    ) -> int:
        """Return how many records are stored (soft-deleted ones only when asked; of one code when given)."""
        query = _matching(
            select(func.count()).select_from(records), installation_id, content_type, code, include_deleted
        )
        with self._db.read("count records") as conn:
            return int(conn.execute(query).scalar_one())

    def soft_delete_unseen(
        self, installation_id: str, content_type: str, *, since: float, run_id: str | None = None
    ) -> int:
        """Mark deleted the records neither seen nor written since ``since`` (D23); return how many."""
        now = self._clock.now()
        with self._db.write(f"detect deleted {content_type} records") as conn:
            return soft_delete_unseen(
                conn, installation_id, content_type, since=since, now=now, run_id=run_id, history=self._history_days > 0
            )
