"""Record history (D39): a change row per change of a record, with its source and changed fields.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    """Create record_history and its timeline index."""
    op.create_table(
        "record_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("installation_id", sa.String(32), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("version", sa.Text()),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text()),
        sa.Column("old", _json()),
        sa.Column("new", _json()),
        sa.Column("changed_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["installation_id"],
            ["installations.id"],
            name=op.f("fk_record_history_installation_id_installations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_history")),
        sa.CheckConstraint("kind IN ('created', 'updated', 'deleted')", name=op.f("ck_record_history_kind")),
        sa.CheckConstraint("source IN ('bulk', 'webhook')", name=op.f("ck_record_history_source")),
    )
    op.create_index(
        op.f("ix_record_history_installation_id_content_type_code_id"),
        "record_history",
        ["installation_id", "content_type", "code", "id"],
    )


def downgrade() -> None:
    """Drop record_history."""
    op.drop_table("record_history")
