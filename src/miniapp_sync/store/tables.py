"""The store's schema as SQLAlchemy Core tables; the migrations must build exactly this (a test compares)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.types import TypeEngine

from miniapp_sync.store.dialects import JSONDocument

# Explicit names keep constraints identical across dialects and let migrations refer to them.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

VERSION_TABLE = "miniapp_sync_alembic_version"  # not alembic_version: the database may be shared


def json_type() -> TypeEngine[Any]:
    """Return the JSON column type: JSONB on PostgreSQL (indexable, compact), JSON text elsewhere."""
    return JSONDocument()


def _epoch(name: str, *, nullable: bool = False) -> Column[float]:
    # Timestamps are float epoch seconds from the injected clock, never database time.
    return Column(name, Double, nullable=nullable)


def _installation_fk() -> ForeignKey:
    return ForeignKey("installations.id", ondelete="CASCADE")


installations = Table(
    "installations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("ns", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("credentials", LargeBinary, nullable=False),
    Column("metadata", json_type(), nullable=False),
    Column("user_input", json_type(), nullable=False),
    Column("error", Text),
    _epoch("created_at"),
    _epoch("updated_at"),
    # When an operator paused its schedules (null: not paused); webhooks and manual syncs go on.
    _epoch("paused_at", nullable=True),
    UniqueConstraint("tenant", "ns"),
    CheckConstraint("status IN ('pending', 'connected', 'error', 'uninstalled')", name="status"),
    Index(None, "ns"),
)

records = Table(
    "records",
    metadata,
    Column("installation_id", String(32), _installation_fk(), primary_key=True),
    Column("content_type", Text, primary_key=True),
    Column("code", Text, primary_key=True),
    Column("data", json_type(), nullable=False),
    Column("content_hash", Text, nullable=False),
    Column("version", Text),
    Column("source", Text, nullable=False),
    Column("partial", Boolean, nullable=False),
    Column("deleted", Boolean, nullable=False),
    _epoch("created_at"),
    _epoch("updated_at"),
    _epoch("seen_at"),
    _epoch("webhook_at", nullable=True),
    # Not a foreign key: the run is provenance only, and webhook writes have none.
    Column("run_id", String(32)),
    CheckConstraint("source IN ('bulk', 'webhook')", name="source"),
)

# D39: one row per change of a record, appended in the transaction that changed it. ``old`` and
# ``new`` hold only the changed fields' values (a field absent on one side is absent from it);
# a creation's ``new`` is the whole record and its ``old`` null; a deletion has neither. The
# key is an autoincrement id: a record's timeline is its rows by id, which the clock cannot tie.
record_history = Table(
    "record_history",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("installation_id", String(32), _installation_fk(), nullable=False),
    Column("content_type", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("version", Text),
    Column("source", Text, nullable=False),
    Column("source_id", Text),  # the bulk run's id, or the inbox delivery's id
    Column("old", json_type()),
    Column("new", json_type()),
    _epoch("changed_at"),
    CheckConstraint("kind IN ('created', 'updated', 'deleted')", name="kind"),
    CheckConstraint("source IN ('bulk', 'webhook')", name="source"),
    # No index on changed_at: ids grow with time, so the purge walks the oldest rows by id, and
    # every record write would otherwise maintain one more index.
    Index(None, "installation_id", "content_type", "code", "id"),
    # "Which records did delivery 42 write?" (a delivery's detail). Partial: bulk writes, the
    # bulk of the rows, maintain nothing more (migration 0011 builds it WHERE source = 'webhook'
    # on both databases). Only SQLite's condition is declared: postgresql_where would load
    # SQLAlchemy's whole PostgreSQL dialect into every process on SQLite (see dialects.py), and
    # Alembic compares no index condition.
    Index("ix_record_history_webhook_source_id", "source_id", sqlite_where=text("source = 'webhook'")),
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("installation_id", String(32), _installation_fk(), nullable=False),
    Column("resource", Text),
    Column("status", Text, nullable=False),
    _epoch("started_at"),
    _epoch("finished_at", nullable=True),
    Column("stats", json_type(), nullable=False),
    Column("error", Text),
    # Who runs it (host, boot, pid, process start: sync.runs.RunOwner) and when it last showed
    # progress, so a run whose process died can be told from one still going (D38).
    Column("owner", Text),
    _epoch("heartbeat_at", nullable=True),
    Column("job_id", Text),  # the job that ran it (D36); None when started outside a queue
    # A running run's figures so far (records, pages, rate, 429s), written at most once a second,
    # so another process (the API of serve, the CLI) can watch it; the last ones stay after it ends.
    Column("progress", json_type()),
    CheckConstraint(
        "status IN ('running', 'succeeded', 'failed', 'partial', 'interrupted', 'abandoned')", name="status"
    ),
    Index(None, "installation_id", "started_at"),
    Index(None, "status"),
    Index(None, "job_id"),
    Index(None, "started_at"),  # "what failed since …" across every installation, newest first
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("installation_id", String(32), _installation_fk(), primary_key=True),
    Column("resource", Text, primary_key=True),
    Column("run_id", String(32)),
    Column("state", json_type(), nullable=False),
    _epoch("updated_at"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    # SQLite only autoincrements a column declared exactly INTEGER PRIMARY KEY.
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("installation_id", String(32), _installation_fk(), nullable=False),
    Column("kind", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("payload", json_type(), nullable=False),
    Column("reason", Text, nullable=False),
    Column("run_id", String(32)),
    _epoch("created_at"),
    _epoch("replayed_at", nullable=True),
    CheckConstraint("kind IN ('record', 'webhook')", name="kind"),
    Index(None, "installation_id", "id"),
)

oauth_states = Table(
    "oauth_states",
    metadata,
    Column("state", Text, primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("ns", Text, nullable=False),
    _epoch("created_at"),
    _epoch("expires_at"),
    _epoch("used_at", nullable=True),
    # What the start link bound the flow to (D31a): the callback finishes exactly that flow.
    Column("redirect_uri", Text),
    Column("reconnect", Boolean, nullable=False, server_default=false()),
    Column("user_input", json_type()),
    Index(None, "expires_at"),
)

rate_budgets = Table(
    "rate_budgets",
    metadata,
    # The request budget of one installation, shared by every worker (D34): GCRA's theoretical
    # arrival time of the next request and the end of a provider-imposed pause. These are
    # epoch seconds on the database's clock, the one clock all workers' machines agree on.
    Column("installation_id", String(32), _installation_fk(), primary_key=True),
    Column("tat", Double, nullable=False),
    Column("paused_until", Double, nullable=False),
)
