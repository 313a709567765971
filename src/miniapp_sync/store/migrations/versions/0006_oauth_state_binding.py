"""OAuth states remember what they are bound to: the redirect_uri, the reconnect flag, the install form (D31a).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

A state is issued from an operator's signed start link; its callback must finish exactly the flow
that link allowed: the same redirect_uri, a reconnect only when the link said so, and the link's
install-form values. States from before this revision have no redirect_uri and are refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the binding columns."""
    with op.batch_alter_table("oauth_states") as batch:
        batch.add_column(sa.Column("redirect_uri", sa.Text(), nullable=True))
        batch.add_column(sa.Column("reconnect", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(
            sa.Column("user_input", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True)
        )


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table("oauth_states") as batch:
        batch.drop_column("user_input")
        batch.drop_column("reconnect")
        batch.drop_column("redirect_uri")
