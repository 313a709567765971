"""The store: installations, records, runs, checkpoints, dead letters, OAuth states, webhooks (SQLite, PostgreSQL).

The webhook side (``Inbox``, ``Outbox`` and their rows) loads on first use
(``miniapp_sync/exports.py``): a sync, or a command that only reads records, runs no inbox
processing, and importing it (the inbox, the processing transaction, the outbox and their
tables) cost every such process ~15 ms of start-up.
"""

from typing import TYPE_CHECKING

from miniapp_sync.exports import lazy_exports
from miniapp_sync.store.model import (
    DeadLetter,
    DeadLetterKind,
    Installation,
    InstallationStatus,
    OAuthState,
    RecordSource,
    RecordWrite,
    Run,
    RunStatus,
    StoredRecord,
    WriteResult,
    Written,
    version_of,
)
from miniapp_sync.store.record_plan import content_hash, normalise_version
from miniapp_sync.store.store import Store

if TYPE_CHECKING:
    from miniapp_sync.store.inbox import Inbox
    from miniapp_sync.store.outbox import Attempt, DeliveryState, DueDelivery, Outbox, Subscription, TriggerEvent
    from miniapp_sync.store.webhook_model import Added, InboxEntry, InboxRow, InboxStatus

__getattr__ = lazy_exports(
    __name__,
    {
        "inbox": ("Inbox",),
        "outbox": ("Attempt", "DeliveryState", "DueDelivery", "Outbox", "Subscription", "TriggerEvent"),
        "webhook_model": ("Added", "InboxEntry", "InboxRow", "InboxStatus"),
    },
)

__all__ = [
    "Added",
    "Attempt",
    "DeadLetter",
    "DeadLetterKind",
    "DeliveryState",
    "DueDelivery",
    "Inbox",
    "InboxEntry",
    "InboxRow",
    "InboxStatus",
    "Installation",
    "InstallationStatus",
    "OAuthState",
    "Outbox",
    "RecordSource",
    "RecordWrite",
    "Run",
    "RunStatus",
    "Store",
    "StoredRecord",
    "Subscription",
    "TriggerEvent",
    "WriteResult",
    "Written",
    "content_hash",
    "normalise_version",
    "version_of",
]
