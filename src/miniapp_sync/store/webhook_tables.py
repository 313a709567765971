"""The webhook half of the schema: the inbox, the trigger outbox, subscriptions and their deliveries.

Declared on the store's one ``metadata`` (so the migration test sees them); migration 0002 builds
exactly these. Inbox and outbox ids never go back: ``sqlite_autoincrement`` keeps SQLite from
reusing the id of a purged last row, which would collide with an outbox ``inbox_id`` or move an
events cursor backwards.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.sql import false

from miniapp_sync.store.tables import json_type, metadata

INBOX_STATUSES: Final = ("pending", "processing", "done", "failed", "ignored", "unmatched", "ping")
DELIVERY_STATUSES: Final = ("pending", "delivered", "failed")


def _id() -> Column[int]:
    # SQLite only autoincrements a column declared exactly INTEGER PRIMARY KEY.
    return Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True)


def _epoch(name: str, *, nullable: bool = False) -> Column[float]:
    return Column(name, Double, nullable=nullable)


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


webhook_inbox = Table(
    "webhook_inbox",
    metadata,
    _id(),
    Column("ns", Text, nullable=False),
    # NULL for a delivery no installation could be found for (status 'unmatched').
    Column("installation_id", String(32), ForeignKey("installations.id", ondelete="CASCADE")),
    Column("event", Text),
    Column("transaction_id", Text),
    Column("status", Text, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("attempts", Integer, nullable=False),
    _epoch("received_at"),
    _epoch("next_attempt_at", nullable=True),
    _epoch("processed_at", nullable=True),
    Column("error", Text),
    # SHA-256 of the body: a resend is the same key with the same body (D26, migration 0009).
    Column("digest", LargeBinary),
    # The key was seen before with another body (a status update naming only the order id): processed.
    Column("reused", Boolean, nullable=False, server_default=false()),
    # The de-duplication key (D26) with the body's digest; NULLs never collide, so undeduplicable
    # deliveries all stay. transaction_id before event: the receiver's lookup gives both columns.
    UniqueConstraint("installation_id", "transaction_id", "event", "digest"),
    CheckConstraint(f"status IN ({_in(INBOX_STATUSES)})", name="status"),
    Index(None, "status", "installation_id", "id"),
    sqlite_autoincrement=True,
)

trigger_outbox = Table(
    "trigger_outbox",
    metadata,
    _id(),
    Column("installation_id", String(32), ForeignKey("installations.id", ondelete="CASCADE"), nullable=False),
    # One event per inbox row at most: reprocessing a row after a crash cannot emit twice.
    Column("inbox_id", BigInteger, nullable=False),
    Column("tenant", Text, nullable=False),
    Column("ns", Text, nullable=False),
    Column("event", Text, nullable=False),
    Column("payload", json_type(), nullable=False),
    _epoch("occurred_at"),
    _epoch("created_at"),
    UniqueConstraint("inbox_id"),
    Index(None, "tenant", "id"),
    sqlite_autoincrement=True,
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("ns", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("secret", LargeBinary, nullable=False),  # encrypted with the credentials key
    _epoch("created_at"),
    UniqueConstraint("tenant", "ns", "url"),
)

trigger_deliveries = Table(
    "trigger_deliveries",
    metadata,
    Column("event_id", BigInteger, ForeignKey("trigger_outbox.id", ondelete="CASCADE"), primary_key=True),
    Column("subscription_id", String(32), ForeignKey("subscriptions.id", ondelete="CASCADE"), primary_key=True),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    _epoch("next_attempt_at", nullable=True),
    _epoch("delivered_at", nullable=True),
    Column("error", Text),
    CheckConstraint(f"status IN ({_in(DELIVERY_STATUSES)})", name="status"),
    Index(None, "status", "next_attempt_at"),
)

# What was refused at the door (D24a): metadata only, never the body. Capped per ns and hour by
# the receiver, so a flood of unverifiable deliveries costs a bounded number of small rows.
webhook_rejections = Table(
    "webhook_rejections",
    metadata,
    _id(),
    Column("ns", Text, nullable=False),
    Column("route", Text, nullable=False),
    Column("installation_id", String(32)),  # the installation named by the URL, if any; no FK: kept after it goes
    Column("status", Integer, nullable=False),  # the HTTP status answered: 401, 404, 413
    Column("reason", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("digest", Text),  # hex SHA-256 of the body, when it was read
    Column("headers", json_type(), nullable=False),  # redacted
    _epoch("received_at"),
    Index(None, "received_at"),
    sqlite_autoincrement=True,
)

REPLAY_STATUSES: Final = ("queued", "running", "done", "failed")

# A bulk replay of deliveries (issue 15): what was asked (ids or a filter), and, once its job ran,
# the report (processed / failed again / refused, item by item). The job carries only the id.
delivery_replays = Table(
    "delivery_replays",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("ns", Text, nullable=False),
    Column("selection", json_type(), nullable=False),
    Column("status", Text, nullable=False),
    Column("report", json_type()),
    Column("job_id", Text),
    _epoch("created_at"),
    _epoch("finished_at", nullable=True),
    CheckConstraint(f"status IN ({_in(REPLAY_STATUSES)})", name="status"),
    Index(None, "job_id"),
)
