"""What the webhook inbox takes in and hands out: received deliveries and stored rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

InboxStatus = Literal["pending", "processing", "done", "failed", "ignored", "unmatched", "ping"]
# What storing a delivery came to (D26): a new key, a resend (same key, same body: left out), or a
# key seen before with another body (stored and processed, counted as reused).
Added = Literal["new", "duplicate", "reused"]


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """One received delivery, as the receiver hands it to the group commit."""

    ns: str
    installation_id: str | None
    event: str | None
    transaction_id: str | None
    status: InboxStatus
    body: bytes
    error: str | None = None


@dataclass(frozen=True, slots=True)
class InboxRow:
    """A stored delivery."""

    id: int
    ns: str
    installation_id: str | None
    event: str | None
    transaction_id: str | None
    status: InboxStatus
    body: bytes
    attempts: int
    received_at: float
    next_attempt_at: float | None
    processed_at: float | None
    error: str | None
    digest: bytes | None = None
    reused: bool = False


def dead_letter_payload(row: InboxRow | InboxEntry, inbox_id: int, received_at: float) -> dict[str, Any]:
    """Return what a webhook dead letter keeps of a delivery: enough to show it and to replay it."""
    try:
        body: Any = orjson.loads(row.body)
    except orjson.JSONDecodeError:
        body = row.body.decode("utf-8", errors="replace")  # kept as text, for the reason to be readable
    return {
        "inboxId": inbox_id,
        "ns": row.ns,
        "event": row.event,
        "transactionId": row.transaction_id,
        "receivedAt": received_at,
        "body": body,
    }
