"""Initial schema: installations, records, sync runs, checkpoints, dead letters, OAuth states.

Revision ID: 0001
Revises:
Create Date: 2025-11-27

Written out in full rather than imported from ``tables.py``: a migration is a frozen snapshot, and
a test checks that applying every migration yields exactly the tables the code declares.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _epoch(name: str, *, nullable: bool = False) -> sa.Column[float]:
    return sa.Column(name, sa.Double(), nullable=nullable)


def _installation_id(table: str) -> sa.Column[str]:
    return sa.Column(
        "installation_id",
        sa.String(32),
        sa.ForeignKey("installations.id", ondelete="CASCADE", name=op.f(f"fk_{table}_installation_id_installations")),
        nullable=False,
    )


def upgrade() -> None:
    """Create every table."""
    op.create_table(
        "installations",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("ns", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("credentials", sa.LargeBinary(), nullable=False),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("user_input", _json(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _epoch("created_at"),
        _epoch("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installations")),
        sa.UniqueConstraint("tenant", "ns", name=op.f("uq_installations_tenant_ns")),
        sa.CheckConstraint(
            "status IN ('pending', 'connected', 'error', 'uninstalled')", name=op.f("ck_installations_status")
        ),
    )
    op.create_index(op.f("ix_installations_ns"), "installations", ["ns"])

    op.create_table(
        "records",
        _installation_id("records"),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("data", _json(), nullable=False),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("partial", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        _epoch("created_at"),
        _epoch("updated_at"),
        _epoch("seen_at"),
        _epoch("webhook_at", nullable=True),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("installation_id", "content_type", "code", name=op.f("pk_records")),
        sa.CheckConstraint("source IN ('bulk', 'webhook')", name=op.f("ck_records_source")),
    )

    op.create_table(
        "sync_runs",
        sa.Column("id", sa.String(32), nullable=False),
        _installation_id("sync_runs"),
        sa.Column("resource", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        _epoch("started_at"),
        _epoch("finished_at", nullable=True),
        sa.Column("stats", _json(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'partial', 'interrupted')", name=op.f("ck_sync_runs_status")
        ),
    )
    op.create_index(op.f("ix_sync_runs_installation_id_started_at"), "sync_runs", ["installation_id", "started_at"])

    op.create_table(
        "checkpoints",
        _installation_id("checkpoints"),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("state", _json(), nullable=False),
        _epoch("updated_at"),
        sa.PrimaryKeyConstraint("installation_id", "resource", name=op.f("pk_checkpoints")),
    )

    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        _installation_id("dead_letters"),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        _epoch("created_at"),
        _epoch("replayed_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        sa.CheckConstraint("kind IN ('record', 'webhook')", name=op.f("ck_dead_letters_kind")),
    )
    op.create_index(op.f("ix_dead_letters_installation_id_id"), "dead_letters", ["installation_id", "id"])

    op.create_table(
        "oauth_states",
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("ns", sa.Text(), nullable=False),
        _epoch("created_at"),
        _epoch("expires_at"),
        _epoch("used_at", nullable=True),
        sa.PrimaryKeyConstraint("state", name=op.f("pk_oauth_states")),
    )
    op.create_index(op.f("ix_oauth_states_expires_at"), "oauth_states", ["expires_at"])


def downgrade() -> None:
    """Drop every table."""
    for table in ("oauth_states", "dead_letters", "checkpoints", "sync_runs", "records", "installations"):
        op.drop_table(table)
