"""De-duplication by (installation, transaction id, event, body digest), and the rejection trail.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

D26: a resend is a delivery with the same key *and* the same body. The inbox gains the body's
SHA-256 (``digest``) and a ``reused`` flag (the key was seen with another body: processed, and
counted), and its unique key becomes (installation_id, transaction_id, event, digest). Rows stored
before keep a NULL digest, so a later delivery never collides with them: at worst an old resend
is processed once more (writes are idempotent upserts).

D24a: ``webhook_rejections`` keeps what was refused at the door (404 unknown tenant, 401, 413),
metadata only. Written out in full: a migration is a frozen snapshot of ``webhook_tables.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_KEY = "uq_webhook_inbox_installation_id_transaction_id"
_NEW_KEY = "uq_webhook_inbox_installation_id_transaction_id_event_digest"
_FK = "fk_webhook_inbox_installation_id_installations"
_STATUSES = "status IN ('pending', 'processing', 'done', 'failed', 'ignored', 'unmatched', 'ping')"


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _inbox_0002() -> sa.Table:
    # SQLite alters a constraint by copying the table: from this, the table as 0002 built it, so
    # that the CHECK constraint and AUTOINCREMENT survive the copy (reflection loses both).
    return sa.Table(
        "webhook_inbox",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("ns", sa.Text(), nullable=False),
        sa.Column(
            "installation_id",
            sa.String(32),
            sa.ForeignKey(
                "installations.id", ondelete="CASCADE", name="fk_webhook_inbox_installation_id_installations"
            ),
        ),
        sa.Column("event", sa.Text()),
        sa.Column("transaction_id", sa.Text()),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.Column("next_attempt_at", sa.Double()),
        sa.Column("processed_at", sa.Double()),
        sa.Column("error", sa.Text()),
        sa.UniqueConstraint("installation_id", "transaction_id", name=_OLD_KEY),
        sa.CheckConstraint(_STATUSES, name="ck_webhook_inbox_status"),
        sa.Index("ix_webhook_inbox_status_installation_id_id", "status", "installation_id", "id"),
        sqlite_autoincrement=True,
    )


def upgrade() -> None:
    """Key the inbox by digest too, and create the rejection trail."""
    with op.batch_alter_table(
        "webhook_inbox", copy_from=_inbox_0002(), table_kwargs={"sqlite_autoincrement": True}
    ) as batch:
        batch.add_column(sa.Column("digest", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("reused", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.drop_constraint(_OLD_KEY, type_="unique")
        batch.create_unique_constraint(_NEW_KEY, ["installation_id", "transaction_id", "event", "digest"])
    op.create_table(
        "webhook_rejections",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("ns", sa.Text(), nullable=False),
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column("installation_id", sa.String(32), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.Text(), nullable=True),
        sa.Column("headers", _json(), nullable=False),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_rejections")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_webhook_rejections_received_at"), "webhook_rejections", ["received_at"])


def downgrade() -> None:
    """Back to (installation, transaction id) keys; rows that only the digest kept apart keep the first."""
    op.drop_index(op.f("ix_webhook_rejections_received_at"), table_name="webhook_rejections")
    op.drop_table("webhook_rejections")
    op.execute(
        "DELETE FROM webhook_inbox WHERE transaction_id IS NOT NULL AND id NOT IN ("
        "SELECT min(id) FROM webhook_inbox WHERE transaction_id IS NOT NULL GROUP BY installation_id, transaction_id)"
    )
    with op.batch_alter_table("webhook_inbox", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_constraint(_NEW_KEY, type_="unique")
        batch.create_unique_constraint(_OLD_KEY, ["installation_id", "transaction_id"])
        batch.drop_column("reused")
        batch.drop_column("digest")
