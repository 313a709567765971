"""Webhooks: the inbox, the trigger outbox, subscriptions and trigger deliveries.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-28

Written out in full, as 0001 is: a migration is a frozen snapshot of ``webhook_tables.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _epoch(name: str, *, nullable: bool = False) -> sa.Column[float]:
    return sa.Column(name, sa.Double(), nullable=nullable)


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False)


def _installation_id(table: str, *, nullable: bool) -> sa.Column[str]:
    return sa.Column(
        "installation_id",
        sa.String(32),
        sa.ForeignKey("installations.id", ondelete="CASCADE", name=op.f(f"fk_{table}_installation_id_installations")),
        nullable=nullable,
    )


def upgrade() -> None:
    """Create the webhook tables."""
    op.create_table(
        "webhook_inbox",
        _id(),
        sa.Column("ns", sa.Text(), nullable=False),
        _installation_id("webhook_inbox", nullable=True),
        sa.Column("event", sa.Text(), nullable=True),
        sa.Column("transaction_id", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _epoch("received_at"),
        _epoch("next_attempt_at", nullable=True),
        _epoch("processed_at", nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_inbox")),
        sa.UniqueConstraint(
            "installation_id", "transaction_id", name=op.f("uq_webhook_inbox_installation_id_transaction_id")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'processing', 'done', 'failed', 'ignored', 'unmatched', 'ping')",
            name=op.f("ck_webhook_inbox_status"),
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_webhook_inbox_status_installation_id_id"), "webhook_inbox", ["status", "installation_id", "id"]
    )

    op.create_table(
        "trigger_outbox",
        _id(),
        _installation_id("trigger_outbox", nullable=False),
        sa.Column("inbox_id", sa.BigInteger(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("ns", sa.Text(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        _epoch("occurred_at"),
        _epoch("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger_outbox")),
        sa.UniqueConstraint("inbox_id", name=op.f("uq_trigger_outbox_inbox_id")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_trigger_outbox_tenant_id"), "trigger_outbox", ["tenant", "id"])

    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("ns", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        _epoch("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint("tenant", "ns", "url", name=op.f("uq_subscriptions_tenant_ns_url")),
    )

    op.create_table(
        "trigger_deliveries",
        sa.Column(
            "event_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "trigger_outbox.id", ondelete="CASCADE", name=op.f("fk_trigger_deliveries_event_id_trigger_outbox")
            ),
            nullable=False,
        ),
        sa.Column(
            "subscription_id",
            sa.String(32),
            sa.ForeignKey(
                "subscriptions.id", ondelete="CASCADE", name=op.f("fk_trigger_deliveries_subscription_id_subscriptions")
            ),
            nullable=False,
        ),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _epoch("next_attempt_at", nullable=True),
        _epoch("delivered_at", nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("event_id", "subscription_id", name=op.f("pk_trigger_deliveries")),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'failed')", name=op.f("ck_trigger_deliveries_status")),
    )
    op.create_index(
        op.f("ix_trigger_deliveries_status_next_attempt_at"), "trigger_deliveries", ["status", "next_attempt_at"]
    )


def downgrade() -> None:
    """Drop the webhook tables."""
    for table in ("trigger_deliveries", "subscriptions", "trigger_outbox", "webhook_inbox"):
        op.drop_table(table)
