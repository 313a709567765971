"""The stored rows of a batch's codes: looked up, marked seen, and locked for the batch's writer, per dialect."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any, Final

import orjson
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Select,
    String,
    bindparam,
    case,
    func,
    select,
    text,
    true,
    update,
)

from miniapp_sync import exactjson
from miniapp_sync.store import dialects
from miniapp_sync.store.driver import Statement, on_sqlite, run_all, sqlite_statement
from miniapp_sync.store.record_plan import Current
from miniapp_sync.store.tables import records

CHUNK: Final = 500  # codes per lookup, a bounded statement whatever the batch size


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
        unnest = func.unnest(bindparam("p_codes", type_=dialects.text_array()))
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


def load(
    conn: Connection, installation_id: str, content_type: str, codes: Sequence[str], *, with_data: bool
) -> dict[str, Current]:
    """Return what is stored of ``codes``, by code (their data too ``with_data``)."""
    dialect = conn.dialect.name
    query = _lookup(dialect, with_data=with_data)
    params = {"p_installation_id": installation_id, "p_content_type": content_type}
    found: dict[str, Current] = {}
    for start in range(0, len(codes), CHUNK):
        chunk = {**params, "p_codes": _codes_param(dialect, codes[start : start + CHUNK])}
        rows: Iterable[Sequence[Any]]
        if dialect == "sqlite":  # the driver hands the data back as its JSON text
            rows = ((*row[:6], exactjson.loads(row[6])) if with_data else row for row in on_sqlite(conn, query, chunk))
        else:
            rows = conn.execute(query, chunk)
        for row in rows:
            data = row[6] if with_data else None
            found[row[0]] = Current(data, row[1], row[2], bool(row[3]), bool(row[4]), row[5])
    return found


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


def mark_seen(conn: Connection, codes: Sequence[str], params: dict[str, Any], *, by_webhook: bool) -> None:
    """Refresh seen_at (and run_id, and webhook_at for a webhook) of stored rows that are not rewritten."""
    if conn.dialect.name == "sqlite":
        run_all(conn, sqlite_marks(codes, params, by_webhook=by_webhook))
        return
    for start in range(0, len(codes), CHUNK):
        values = {
            **params,
            "p_codes": _codes_param("postgresql", codes[start : start + CHUNK]),
            "p_by_webhook": by_webhook,
        }
        conn.execute(_PG_MARK_SEEN, values)


def sqlite_marks(codes: Sequence[str], params: dict[str, Any], *, by_webhook: bool) -> list[Statement]:
    """Return mark_seen's SQLite statements, a bounded one per CHUNK codes."""
    return [
        sqlite_statement(
            _SQLITE_MARK_SEEN,
            {**params, "p_codes": _codes_param("sqlite", codes[start : start + CHUNK]), "p_by_webhook": by_webhook},
        )
        for start in range(0, len(codes), CHUNK)
    ]


def lock(conn: Connection, installation_id: str, content_type: str) -> None:
    """Make the writers of (installation, content type) take turns until the transaction ends."""
    # A batch decides from rows that a concurrent batch (a webhook during a bulk run) may be about
    # to insert or change; on PostgreSQL one lock per (installation, content type), held until
    # commit, makes writers take turns. SQLite writers are serialised already (BEGIN IMMEDIATE).
    if conn.dialect.name == "postgresql":
        key = f"{installation_id}/{content_type}"
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})
