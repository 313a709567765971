"""Alembic environment: migrations run on the connection the Store passes in, never from an ini file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from miniapp_sync.store.tables import VERSION_TABLE, metadata

# Any constant will do: it only has to be the same for every process migrating this database.
_PG_MIGRATION_LOCK = 0x6D696E69617070


def run_migrations_online() -> None:
    """Run the pending migrations inside one transaction on the Store's connection."""
    connection: Connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        # SQLite alters tables by copying them; batch mode does that for us.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two processes starting at once must not both create the tables.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        context.run_migrations()


run_migrations_online()
