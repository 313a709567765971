"""``miniapp-sync db upgrade``: the store's Alembic migrations, and on PostgreSQL Procrastinate's schema.

Procrastinate ships its schema as one SQL file plus numbered migration scripts, and leaves
tracking which were applied to its users. The version whose schema we installed is kept as the
comment of ``procrastinate_jobs``; an upgrade applies the scripts released after it, up to the
installed Procrastinate. A schema installed by someone else carries no such comment and is left
alone. Every step runs under an advisory lock, so processes starting together do not race.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import procrastinate
import psycopg
from procrastinate.schema import SchemaManager
from psycopg import sql
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import URL

from miniapp_sync.backend import Backend
from miniapp_sync.errors import StoreError
from miniapp_sync.store import Store
from miniapp_sync.store.database import resolve_url
from miniapp_sync.store.tables import VERSION_TABLE

_LOCK: Final = 0x6D696E69_6A6F6273  # any constant shared by every process installing the job schema
_MARK: Final = re.compile(r"^procrastinate (\S+) schema")
_MIGRATION: Final = re.compile(r"^(\d+\.\d+\.\d+)_(\d+)_.*\.sql$")

Version = tuple[int, int, int]


def version(text: str) -> Version:
    """Parse a release number ("3.10.0", "03.04.00", "3.11.0.dev2": the first three numbers); raise ValueError."""
    numbers = [int(n) for n in re.findall(r"\d+", text)[:3]]
    if len(numbers) != 3:
        raise ValueError(f"not a release number: {text!r}")
    return numbers[0], numbers[1], numbers[2]


def shown(release: Version) -> str:
    """Return a release number as people write it."""
    return ".".join(map(str, release))


@dataclass(frozen=True, slots=True, order=True)
class Migration:
    """One of Procrastinate's migration scripts: the release it leads to, its serial number, its file."""

    version: Version
    serial: int
    path: Path


def migrations(folder: Path | None = None) -> list[Migration]:
    """Return Procrastinate's migration scripts in the order they apply."""
    folder = folder or Path(SchemaManager.get_migrations_path())
    found = []
    for path in folder.glob("*.sql"):
        match = _MIGRATION.match(path.name)
        if match:
            found.append(Migration(version(match[1]), int(match[2]), path))
    return sorted(found)


def _script(conn: Connection, script: str) -> None:
    # Without parameters psycopg sends the text as one simple query: several statements, and no
    # placeholder parsing of the '%' the scripts contain.
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    raw.execute(script.encode())


def _mark(conn: Connection, version: str) -> None:
    conn.execute(text(f"COMMENT ON TABLE procrastinate_jobs IS 'procrastinate {version} schema, miniapp-sync'"))


def install_job_schema(engine: Engine, *, folder: Path | None = None) -> str:
    """Install or upgrade Procrastinate's schema in ``engine``'s database; return what was done."""
    installed = version(procrastinate.__version__)
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
        if not conn.execute(text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")).scalar_one():
            _script(conn, SchemaManager.get_schema())
            _mark(conn, shown(installed))
            return f"job queue: installed the Procrastinate {shown(installed)} schema"
        comment = conn.execute(text("SELECT obj_description('procrastinate_jobs'::regclass, 'pg_class')")).scalar()
        match = _MARK.match(comment or "")
        try:
            current = version(match[1]) if match else None
        except ValueError:
            current = None
        if current is None:
            return (
                "job queue: a Procrastinate schema exists that miniapp-sync did not install; left as it is "
                "(apply Procrastinate's migrations to it yourself: `procrastinate schema --migrations-path`)"
            )
        if current > installed:
            raise StoreError(
                f"the job queue schema is Procrastinate {shown(current)}'s, newer than the installed "
                f"{shown(installed)}; upgrade miniapp-sync's environment"
            )
        pending = [m for m in migrations(folder) if current < m.version <= installed]
        for migration in pending:
            _script(conn, migration.path.read_text(encoding="utf-8"))
        _mark(conn, shown(installed))
    if not pending:
        return f"job queue: the Procrastinate {shown(installed)} schema is current"
    steps = f"{len(pending)} migrations"
    return f"job queue: upgraded the schema from Procrastinate {shown(current)} to {shown(installed)} ({steps})"


def create_database(url: URL) -> bool:
    """Create ``url``'s PostgreSQL database unless it exists (connecting to the server's ``postgres`` one)."""
    admin = url.set(drivername="postgresql", database="postgres", query={}).render_as_string(hide_password=False)
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)).fetchone():
                return False
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(url.database or "")))
    except psycopg.Error as exc:
        raise StoreError(f"cannot create the database {url.database!r}: {' '.join(str(exc).split())}") from None
    return True


def upgrade_database(url: str | None, *, create: bool = False, environ: Mapping[str, str]) -> list[str]:
    """Migrate the store at ``url`` (creating its PostgreSQL database if asked) and install the job schema."""
    resolved = resolve_url(url, environ)
    notes = []
    if create and resolved.get_backend_name() == "postgresql" and create_database(resolved):
        notes.append(f"created the database {resolved.database!r}")
    with Store.open(url, environ=environ) as store:  # runs the Alembic migrations
        with store.database.read("read the schema version") as conn:
            revision = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one()
        notes.append(f"store {store.url}: schema at revision {revision}")
        if Backend.of(store).shared_queue:
            notes.append(install_job_schema(store.database.engine))
        else:
            notes.append("job queue: none needed (on SQLite, `serve` runs jobs in its own process)")
    return notes
