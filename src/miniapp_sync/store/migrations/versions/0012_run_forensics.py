"""Installations can be paused; runs show live progress; runs are searched by start time.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

``installations.paused_at`` (null: not paused) makes the scheduler skip an installation while
webhooks keep flowing. ``sync_runs.progress`` holds a running run's figures so far, written at
most once a second, so another process can watch it. ``ix_sync_runs_started_at`` serves "which
runs failed since …" across every installation, newest first.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the two columns and the index."""
    with op.batch_alter_table("installations") as batch:
        batch.add_column(sa.Column("paused_at", sa.Double(), nullable=True))
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(sa.Column("progress", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True))
    op.create_index("ix_sync_runs_started_at", "sync_runs", ["started_at"])


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_sync_runs_started_at", "sync_runs")
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("progress")
    with op.batch_alter_table("installations") as batch:
        batch.drop_column("paused_at")
