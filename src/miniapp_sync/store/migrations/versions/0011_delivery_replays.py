"""Bulk replays of webhook deliveries as jobs, and the records a delivery wrote found by its id.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

``delivery_replays`` holds a replay's selection (ids or a filter) and, once its job ran, its
report; the job carries only the replay's id (D36). A partial index on ``record_history.source_id``
for webhook rows answers "which records did this delivery write" (a delivery's detail) without
costing bulk writes anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WEBHOOK = sa.text("source = 'webhook'")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    """Create delivery_replays and the webhook source index."""
    op.create_table(
        "delivery_replays",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("ns", sa.Text(), nullable=False),
        sa.Column("selection", _json(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("report", _json()),
        sa.Column("job_id", sa.Text()),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("finished_at", sa.Double()),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_replays")),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')", name=op.f("ck_delivery_replays_status")
        ),
    )
    op.create_index(op.f("ix_delivery_replays_job_id"), "delivery_replays", ["job_id"])
    op.create_index(
        "ix_record_history_webhook_source_id",
        "record_history",
        ["source_id"],
        sqlite_where=_WEBHOOK,
        postgresql_where=_WEBHOOK,
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_record_history_webhook_source_id", "record_history")
    op.drop_table("delivery_replays")
