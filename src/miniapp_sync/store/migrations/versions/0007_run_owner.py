"""Runs carry their owner and a heartbeat, and may end ``abandoned`` (D38).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

A run whose process was killed stayed ``running`` forever. Its owner (host, boot, pid, process
start) and last heartbeat let the next process that opens the store, or a worker's sweep, tell a
dead run from a live one and close it as ``abandoned``. Written out, as every migration is.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = "status IN ('running', 'succeeded', 'failed', 'partial', 'interrupted')"
_AFTER = "status IN ('running', 'succeeded', 'failed', 'partial', 'interrupted', 'abandoned')"


def _status_check(condition: str) -> None:
    # SQLite cannot alter a CHECK constraint: batch mode copies the table with the new one.
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_constraint(op.f("ck_sync_runs_status"), type_="check")
        batch.create_check_constraint(op.f("ck_sync_runs_status"), condition)


def upgrade() -> None:
    """Add owner and heartbeat_at, allow 'abandoned', and index the status (running runs are looked up)."""
    op.add_column("sync_runs", sa.Column("owner", sa.Text(), nullable=True))
    op.add_column("sync_runs", sa.Column("heartbeat_at", sa.Double(), nullable=True))
    _status_check(_AFTER)
    op.create_index(op.f("ix_sync_runs_status"), "sync_runs", ["status"])


def downgrade() -> None:
    """Drop what upgrade added; abandoned runs become interrupted."""
    op.drop_index(op.f("ix_sync_runs_status"), "sync_runs")
    op.execute("UPDATE sync_runs SET status = 'interrupted' WHERE status = 'abandoned'")
    _status_check(_BEFORE)
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("owner")
