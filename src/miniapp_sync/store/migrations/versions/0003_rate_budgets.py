"""Rate budgets: one row per installation holding its request budget shared across workers (D34).

Revision ID: 0003
Revises: 0002
Create Date: 2025-11-28

Written out in full, as 0001 is: a migration is a frozen snapshot of ``tables.rate_budgets``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the rate budget table."""
    op.create_table(
        "rate_budgets",
        sa.Column(
            "installation_id",
            sa.String(32),
            sa.ForeignKey(
                "installations.id", ondelete="CASCADE", name=op.f("fk_rate_budgets_installation_id_installations")
            ),
            nullable=False,
        ),
        sa.Column("tat", sa.Double(), nullable=False),
        sa.Column("paused_until", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("installation_id", name=op.f("pk_rate_budgets")),
    )


def downgrade() -> None:
    """Drop the rate budget table."""
    op.drop_table("rate_budgets")
