"""Runs name the job that ran them, so "sync started" answers a job id that leads to its run (D36).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

A nullable ``job_id`` on ``sync_runs`` (runs started outside a queue have none), indexed for the
lookup by job. Job ids are strings: the in-process queue's are random, Procrastinate's its row ids.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the column and its index."""
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(sa.Column("job_id", sa.Text(), nullable=True))
    op.create_index("ix_sync_runs_job_id", "sync_runs", ["job_id"])


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_sync_runs_job_id", "sync_runs")
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("job_id")
