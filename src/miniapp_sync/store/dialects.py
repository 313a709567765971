"""What the store's statements need of one database's SQLAlchemy dialect, imported when first used.

``sqlalchemy.dialects.postgresql`` loads every PostgreSQL driver's module (asyncpg, psycopg,
pg8000, …) on import: about a tenth of SQLAlchemy's own import (~0.13 G instructions, ~40 ms)
that a store on SQLite never uses. So statements ask here, by dialect name, and tables declare
their JSON columns with ``JSONDocument``, which names JSONB only when PostgreSQL compiles it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON
from sqlalchemy.types import TypeDecorator

if TYPE_CHECKING:
    from sqlalchemy import Dialect, Table
    from sqlalchemy.dialects.postgresql import Insert
    from sqlalchemy.types import TypeEngine


def insert(dialect: str, table: Table) -> Insert:
    """Return the dialect's INSERT into ``table`` (the one with ON CONFLICT); ``dialect`` is sqlite or postgresql."""
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        # Both dialects' Insert offer the same on_conflict_* and excluded: typed as PostgreSQL's.
        return sqlite.insert(table)  # type: ignore[return-value]
    from sqlalchemy.dialects import postgresql

    return postgresql.insert(table)


def text_array() -> TypeEngine[Any]:
    """Return PostgreSQL's text[] (used only in PostgreSQL's statements)."""
    from sqlalchemy import Text
    from sqlalchemy.dialects import postgresql

    return postgresql.ARRAY(Text)


class JSONDocument(TypeDecorator[Any]):
    """A JSON column: JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.

    As ``JSON().with_variant(JSONB(), "postgresql")``, without importing PostgreSQL's dialect to
    declare the tables: the JSONB type is looked up when a PostgreSQL connection compiles it.
    """

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())
