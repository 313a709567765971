"""PostgreSQL bulk upserts (D35): COPY a batch into a temporary staging table, then one INSERT … SELECT.

The staging table is the session's own (``pg_temp``), so concurrent writers never meet in it.
It is created ``ON COMMIT DELETE ROWS`` on first use and kept for the session: creating and
dropping it per transaction (``ON COMMIT DROP``) would churn the system catalogs at every batch.
The INSERT takes its rows out of the table with ``DELETE … RETURNING``, so a transaction that
writes several batches (a webhook processing transaction) starts each one from an empty table;
the truncation at commit keeps the deleted rows from piling up, since autovacuum never visits
temporary tables. A rollback takes the copied rows (and a table created in it) away with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import psycopg
from psycopg import postgres, sql
from psycopg.adapt import Buffer, Dumper
from psycopg.pq import Format
from sqlalchemy import Connection, Dialect, Table, column, delete, select, table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Insert


class _EncodedJsonb(Dumper):
    """Dump JSON text already encoded (bytes) in jsonb's binary form: a version byte, then the text."""

    format = Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: Any) -> Buffer:
        return b"\x01" + cast(bytes, obj)


@dataclass(frozen=True, slots=True)
class _Staging:
    create: str
    copy: sql.Composed
    types: list[str]
    insert: Insert


@lru_cache(maxsize=16)  # an entry per statement and engine (whose dialect quotes and names types)
def _staging(upsert: Insert, dialect: Dialect) -> _Staging:
    target = cast(Table, upsert.table)
    # A generated key (record_history's id) is left to the INSERT: the staging table goes without it.
    kept = [c for c in target.c if not (c.primary_key and c.autoincrement is True)]
    names = [c.name for c in kept]
    staged = table(f"{target.name}_staging", *(column(n) for n in names), schema="pg_temp")
    preparer = dialect.identifier_preparer
    # Each batch asks for the table: after a rollback of the transaction that created it, or behind
    # a pooler that moves transactions between sessions, it may be gone. The check costs a little
    # (see _COPY_ROWS in records.py); remembering the table per connection would be wrong then.
    if len(kept) == len(target.c):
        create = (
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {preparer.format_table(staged)} "
            f"(LIKE {preparer.format_table(target)}) ON COMMIT DELETE ROWS"
        )
    else:  # LIKE would copy the key's NOT NULL; a table made from a query copies no constraint
        create = (
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {preparer.format_table(staged)} ON COMMIT DELETE ROWS AS "
            f"SELECT {', '.join(map(preparer.quote, names))} FROM {preparer.format_table(target)} WITH NO DATA"
        )
    copy = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier("pg_temp", staged.name), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    # Binary COPY needs each column's type on the client; they are the table's declared types.
    types = [c.type.compile(dialect=dialect).split("(")[0].lower() for c in kept]
    moved = delete(staged).returning(*staged.c).cte("staged")
    return _Staging(create, copy, types, upsert.from_select(names, select(moved)).add_cte(moved))


def copy_upsert(conn: Connection, upsert: Insert, rows: Iterable[Sequence[Any]]) -> None:
    """Run ``upsert`` (an INSERT, with ON CONFLICT or not, given no values) for ``rows``, in the caller's transaction.

    A row holds a value for each column of the table, in the table's order, but a generated key
    (an autoincrement primary key); a jsonb column takes the encoded JSON as bytes. The rows must
    not repeat a key: ON CONFLICT changes a row once.
    """
    staging = _staging(upsert, conn.dialect)
    conn.exec_driver_sql(staging.create)
    driver = cast(psycopg.Connection[Any], conn.connection.driver_connection)
    try:
        with driver.cursor() as cursor:
            cursor.adapters.register_dumper(None, _EncodedJsonb)  # this cursor's COPY only
            with cursor.copy(staging.copy) as copy:
                copy.set_types(staging.types)
                for row in rows:
                    copy.write_row(row)
    except psycopg.Error as exc:
        # Raised by the driver itself, not through SQLAlchemy: wrap it as SQLAlchemy would, so
        # callers see the same database errors as from any other statement.
        raise DBAPIError.instance(staging.copy.as_string(), None, exc, psycopg.Error, hide_parameters=True) from exc
    conn.execute(staging.insert)
