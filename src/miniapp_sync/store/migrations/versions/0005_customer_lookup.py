"""Indexes for finding a customer by email or phone (D28), as the webhook processor does.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

Partial expression indexes over core:customer records: ``(installation_id, lower(<field>))``,
the field read from the JSON data in each dialect's syntax. The processor's query
(``store.processing._by_field``) spells the same expressions; written out here, as a migration is
a frozen snapshot. Without them each new customer in a delivery read every stored customer of the
installation twice (email, then phone).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FIELDS = {"email": "primaryEmail", "phone": "primaryPhone"}


def _key(dialect: str, field: str) -> str:
    return f"lower(json_extract(data, '$.{field}'))" if dialect == "sqlite" else f"lower(data ->> '{field}')"


def upgrade() -> None:
    """Create the two lookup indexes."""
    dialect = op.get_bind().dialect.name
    for name, field in _FIELDS.items():
        op.execute(
            f"CREATE INDEX ix_records_customer_{name} ON records (installation_id, {_key(dialect, field)}) "
            "WHERE content_type = 'core:customer'"
        )


def downgrade() -> None:
    """Drop them."""
    for name in _FIELDS:
        op.execute(f"DROP INDEX ix_records_customer_{name}")
