"""Record writes and reads (D20-D23): decide per record in memory, then write the batch at once.

A batch is one transaction: one SELECT of the stored rows for the batch's codes, a decision per
write (stale, unchanged, created, updated), one upsert for what changed (on PostgreSQL, COPY
through a staging table, or executemany for a small batch; multi-row statements on SQLite), one
UPDATE that marks the rest as seen, and the resource checkpoint (D6). Writes of one code later
in the same batch see the outcome of the earlier ones; each code is upserted once, with its
final state.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache, lru_cache
from operator import itemgetter
from typing import Any, Final

import orjson
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Row,
    Select,
    String,
    Text,
    bindparam,
    case,
    func,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from miniapp_sync import exactjson
from miniapp_sync.errors import StoreError, preview
from miniapp_sync.store.driver import on_driver, on_sqlite
from miniapp_sync.store.history import change_rows, deletion_rows, insert_changes
from miniapp_sync.store.model import RECORD_SOURCES, RecordSource, RecordWrite, StoredRecord, WriteResult, Written
from miniapp_sync.store.tables import checkpoints, records

_CHUNK: Final = 500  # codes per lookup, a bounded statement whatever the batch size
_COLUMNS: Final = tuple(c.name for c in records.c)
_KEEP_ON_UPDATE: Final = frozenset({"installation_id", "content_type", "code", "created_at"})
# Rows per SQLite upsert statement, within the bound-variable limit (999 before SQLite 3.32).
_SQLITE_ROWS: Final = (32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999) // len(_COLUMNS)


def content_hash(data: dict[str, Any]) -> str:
    """Return the SHA-256 of the canonical JSON of ``data`` (sorted keys), the record's identity of content."""
    return hashlib.sha256(_canonical(data)).hexdigest()


def _canonical(data: dict[str, Any]) -> bytes:
    return exactjson.dumps(data, sort_keys=True)  # exact: ids past 64 bits stay themselves (D26)


def normalise_version(version: str) -> str:
    """Return an ISO 8601 timestamp as UTC with microseconds, so versions compare as strings; other text as is."""
    try:
        parsed = datetime.fromisoformat(version)
    except ValueError:
        return version
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # a provider that omits the offset means UTC more often than not
    return parsed.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


@dataclass(slots=True)
class _Current:
    """What is known of one code while a batch is decided: the stored row, then each accepted write."""

    data: dict[str, Any] | None  # None when the batch has no merge, so the stored data was not loaded
    content_hash: str
    version: str | None
    partial: bool
    deleted: bool
    webhook_at: float | None


@dataclass(slots=True)
class _Plan:
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # code -> full row to upsert
    # code -> the canonical JSON its hash was taken of: SQLite stores these bytes, not a second encoding
    texts: dict[str, bytes] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)  # stored codes not rewritten: refresh seen_at only
    seen_by_webhook: list[str] = field(default_factory=list)  # ... and webhook_at (an unchanged webhook write)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    written: dict[str, Written] = field(default_factory=dict)  # in first-write order, each code's last state


def _is_stale(current: _Current, write: RecordWrite, version: str | None, source: RecordSource) -> bool:
    # D21: versions decide when both sides have one; otherwise a bulk page fetched before the
    # record's last webhook write must not overwrite it.
    if version is not None and current.version is not None:
        return current.version > version
    return (
        source == "bulk"
        and write.fetched_at is not None
        and current.webhook_at is not None
        and current.webhook_at > write.fetched_at
    )


def _is_newer(current: _Current, write: RecordWrite, version: str | None, source: RecordSource) -> bool:
    # D21 the other way round: the write is known to be newer than what is stored.
    if version is not None and current.version is not None:
        return version > current.version
    return (
        source == "bulk"
        and write.fetched_at is not None
        and current.webhook_at is not None
        and write.fetched_at > current.webhook_at
    )


def _plan(
    stored: dict[str, _Current],
    writes: Sequence[RecordWrite],
    *,
    installation_id: str,
    content_type: str,
    source: RecordSource,
    run_id: str | None,
    now: float,
    repeats: bool,
) -> _Plan:
    plan = _Plan()
    current = dict(stored)
    for write in writes:
        code = write.code
        version = None if write.version is None else normalise_version(write.version)
        known = current.get(code)
        data = write.data
        # D22: a full write over a partial record completes it. Unless the write is known to be
        # newer (D21), the fields the updates brought happened later: they win, their version stays.
        if known is not None and known.partial and not known.deleted and not write.merge:
            if not _is_newer(known, write, version, source):
                assert known.data is not None  # write_records loads a partial record's data
                data, version = {**write.data, **known.data}, known.version or version
        elif known is not None and _is_stale(known, write, version, source):
            plan.stale += 1
            if code not in plan.rows:
                plan.seen.append(code)
            continue
        if write.merge:
            data = write.data if known is None else {**(known.data or {}), **write.data}
            partial = True if known is None else known.partial or write.partial
        else:
            partial = write.partial
        try:
            text = _canonical(data)
        except (TypeError, ValueError) as exc:  # not JSON: an object, or NaN
            raise StoreError(
                f"cannot write {content_type} record {code!r}: its data is not JSON-serialisable ({exc})"
            ) from None
        digest = hashlib.sha256(text).hexdigest()
        if known is not None and not known.deleted and known.content_hash == digest and known.partial == partial:
            plan.unchanged += 1
            if code not in plan.rows:
                (plan.seen_by_webhook if source == "webhook" else plan.seen).append(code)
            elif source == "webhook":
                plan.rows[code]["webhook_at"] = now
            continue
        if known is None:
            plan.created += 1
        else:
            plan.updated += 1
            if version is None:
                version = known.version  # keep the newest version we know of for later stale checks
        webhook_at = now if source == "webhook" else (None if known is None else known.webhook_at)
        if repeats:  # only a later write of the same code reads what this one leaves
            current[code] = _Current(data, digest, version, partial, False, webhook_at)
        plan.written[code] = Written(data, partial)
        plan.texts[code] = text
        plan.rows[code] = {
            "installation_id": installation_id,
            "content_type": content_type,
            "code": code,
            "data": data,
            "content_hash": digest,
            "version": version,
            "source": source,
            "partial": partial,
            "deleted": False,
            "created_at": now,
            "updated_at": now,
            "seen_at": now,
            "webhook_at": webhook_at,
            "run_id": run_id,
        }
    return plan


@cache
def _lookup(dialect: str, *, with_data: bool) -> Select[Any]:
    r = records.c
    columns: list[ColumnElement[Any]] = [r.code, r.content_hash, r.version, r.partial, r.deleted, r.webhook_at]
    if with_data:
        columns.append(r.data)  # decoding JSON costs; only merges need the stored data
    same_key = (r.installation_id == bindparam("p_installation_id"), r.content_type == bindparam("p_content_type"))
    if dialect == "postgresql":
        # One primary-key probe per code, forced by a LATERAL subquery (LIMIT 1 keeps the planner
        # from flattening it). With `code = ANY(...)` the planner, misled by statistics that lag
        # behind an initial import, scans the installation's whole range for every batch.
        unnest = func.unnest(bindparam("p_codes", type_=postgresql.ARRAY(Text)))
        codes = unnest.table_valued("code").render_derived(name="k")
        probe = select(*columns).where(*same_key, r.code == codes.c.code).limit(1).lateral("r")
        return select(*probe.c).select_from(codes).join(probe, true())
    # SQLite: the codes travel as one JSON array, so the statement text is the same for every
    # batch (SQLite's statement cache keeps it compiled) and no per-code parameter is bound.
    return select(*columns).where(*same_key, r.code.in_(_sqlite_codes()))


def _sqlite_codes() -> Select[Any]:
    return select(func.json_each(bindparam("p_codes", type_=String)).table_valued("value").c.value)


def _codes_param(dialect: str, codes: Sequence[str]) -> Any:
    return list(codes) if dialect == "postgresql" else orjson.dumps(list(codes)).decode()


def _load(
    conn: Connection, installation_id: str, content_type: str, codes: Sequence[str], *, with_data: bool
) -> dict[str, _Current]:
    dialect = conn.dialect.name
    query = _lookup(dialect, with_data=with_data)
    params = {"p_installation_id": installation_id, "p_content_type": content_type}
    found: dict[str, _Current] = {}
    for start in range(0, len(codes), _CHUNK):
        chunk = {**params, "p_codes": _codes_param(dialect, codes[start : start + _CHUNK])}
        rows: Iterable[Sequence[Any]]
        if dialect == "sqlite":  # the driver hands the data back as its JSON text
            rows = ((*row[:6], exactjson.loads(row[6])) if with_data else row for row in on_sqlite(conn, query, chunk))
        else:
            rows = conn.execute(query, chunk)
        for row in rows:
            data = row[6] if with_data else None
            found[row[0]] = _Current(data, row[1], row[2], bool(row[3]), bool(row[4]), row[5])
    return found


@cache
def _record_upsert(dialect: str) -> Insert:
    stmt = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(records)
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


def _postgres_upsert_records(conn: Connection, plan: _Plan) -> None:
    rows = list(plan.rows.values())
    if len(rows) < _COPY_ROWS:
        conn.execute(_record_upsert(conn.dialect.name), rows)
        return
    from miniapp_sync.store.pg_copy import copy_upsert  # psycopg: only PostgreSQL stores pay its import

    for row in rows:
        row["data"] = plan.texts[row["code"]]  # the canonical JSON, as on SQLite: encoded once
    copy_upsert(conn, _record_upsert(conn.dialect.name), map(itemgetter(*_COLUMNS), rows))


def _sqlite_upsert_records(conn: Connection, plan: _Plan) -> None:
    # SQLAlchemy's executemany costs ~10 µs a row in bind processing, and sqlite3's executemany
    # releases and retakes the GIL around every row, which stalls behind a busy event loop
    # thread. Multi-row statements with the values already flat cost a step per few hundred rows.
    # The data stored is the canonical JSON the hash was taken of: serialised once, and a JSON
    # object's key order carries no meaning (PostgreSQL's JSONB does not keep it either).
    columns = itemgetter(*_COLUMNS)
    rows = list(plan.rows.values())
    for start in range(0, len(rows), _SQLITE_ROWS):
        chunk = rows[start : start + _SQLITE_ROWS]
        values: list[Any] = []
        for row in chunk:
            row["data"] = plan.texts[row["code"]]
            values += columns(row)
        on_driver(conn, _sqlite_record_upsert(len(chunk)), tuple(values))


@cache
def _checkpoint_upsert(dialect: str) -> Insert:
    stmt = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(checkpoints)
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


# The PostgreSQL form finds the rows with the same per-code probe as _lookup, then updates them
# by tuple id in one statement (a TID scan): robust to stale statistics, and one round trip.
_PG_MARK_SEEN: Final = text("""
UPDATE records SET
    seen_at = :p_now,
    run_id = COALESCE(:p_run_id, run_id),
    webhook_at = CASE WHEN :p_by_webhook THEN :p_now ELSE webhook_at END
WHERE ctid = ANY(ARRAY(
    SELECT p.ctid FROM unnest(CAST(:p_codes AS text[])) AS k(code)
    CROSS JOIN LATERAL (
        SELECT ctid FROM records
        WHERE installation_id = :p_installation_id AND content_type = :p_content_type AND code = k.code
        LIMIT 1
    ) AS p
))
""")

_SQLITE_MARK_SEEN: Final = (
    update(records)
    .where(
        records.c.installation_id == bindparam("p_installation_id"),
        records.c.content_type == bindparam("p_content_type"),
        records.c.code.in_(_sqlite_codes()),
    )
    .values(
        seen_at=bindparam("p_now"),
        run_id=func.coalesce(bindparam("p_run_id", type_=String), records.c.run_id),
        webhook_at=case((bindparam("p_by_webhook", type_=Boolean), bindparam("p_now")), else_=records.c.webhook_at),
    )
)


def _mark_seen(conn: Connection, codes: Sequence[str], params: dict[str, Any], *, by_webhook: bool) -> None:
    """Refresh seen_at (and run_id, and webhook_at for a webhook) of stored rows that are not rewritten."""
    dialect = conn.dialect.name
    stmt = _PG_MARK_SEEN if dialect == "postgresql" else _SQLITE_MARK_SEEN
    for start in range(0, len(codes), _CHUNK):
        chunk = _codes_param(dialect, codes[start : start + _CHUNK])
        values = {**params, "p_codes": chunk, "p_by_webhook": by_webhook}
        if dialect == "sqlite":
            on_sqlite(conn, stmt, values)
        else:
            conn.execute(stmt, values)


def _lock(conn: Connection, installation_id: str, content_type: str) -> None:
    # A batch decides from rows that a concurrent batch (a webhook during a bulk run) may be about
    # to insert or change; on PostgreSQL one lock per (installation, content type), held until
    # commit, makes writers take turns. SQLite writers are serialised already (BEGIN IMMEDIATE).
    if conn.dialect.name == "postgresql":
        key = f"{installation_id}/{content_type}"
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})


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
) -> WriteResult:
    """Apply a batch of writes inside the caller's transaction and return what each did.

    With ``history``, each created or changed record also gets its change row (D39), whose
    source is the write's ``origin`` (a webhook delivery) or else ``run_id``.
    """
    if source not in RECORD_SOURCES:
        raise StoreError(f"unknown record source {source!r}; expected one of {sorted(RECORD_SOURCES)}")
    _lock(conn, installation_id, content_type)
    codes = list(dict.fromkeys(w.code for w in writes))
    for code in codes:
        if not isinstance(code, str) or not code:
            raise StoreError(
                f"cannot write a {content_type} record: code must be a non-empty string, found {preview(code)}"
            )
    with_data = any(w.merge for w in writes)
    stored = _load(conn, installation_id, content_type, codes, with_data=with_data) if codes else {}
    partial = [code for code, known in stored.items() if known.partial and not known.deleted]
    if partial and not with_data:  # a full write may complete them (D22): their data is needed, rarely
        stored.update(_load(conn, installation_id, content_type, partial, with_data=True))
    plan = _plan(
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
    if plan.rows and conn.dialect.name == "sqlite":
        _sqlite_upsert_records(conn, plan)
    elif plan.rows:
        _postgres_upsert_records(conn, plan)
    insert_changes(conn, changes, copy=len(changes) >= _COPY_ROWS)
    params = {"p_installation_id": installation_id, "p_content_type": content_type, "p_now": now, "p_run_id": run_id}
    for group, by_webhook in ((plan.seen, False), (plan.seen_by_webhook, True)):
        # A code rewritten later in the batch already gets seen_at (and webhook_at) from the upsert.
        untouched = [code for code in dict.fromkeys(group) if code not in plan.rows]
        if untouched:
            _mark_seen(conn, untouched, params, by_webhook=by_webhook)
    if checkpoint is not None:
        resource, state = checkpoint
        save_checkpoint(conn, installation_id, resource, state, run_id=run_id, now=now)
    return WriteResult(plan.created, plan.updated, plan.unchanged, plan.stale, list(plan.written), plan.written)


def _changes(
    conn: Connection,
    key: tuple[str, str],
    stored: dict[str, _Current],
    plan: _Plan,
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
        stored.update(_load(conn, *key, missing, with_data=True))
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
    _lock(conn, installation_id, content_type)
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
