"""Redeliver a trigger event a subscriber never took (D27): one more attempt, made by the deliver job (D36).

Only a delivery that was given up on (``failed``) is sent again: a pending one is on its way,
and a delivered one would reach the subscriber twice. The attempt is the deliver job's, like
every other, so it is signed, recorded and counted the same way; if it fails it is failed
again (no new round of retries), and the operator can redeliver once more.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from miniapp_sync.errors import WebhookError
from miniapp_sync.store import Outbox, Store
from miniapp_sync.store.outbox import DeliveryState

if TYPE_CHECKING:
    from miniapp_sync.jobs import Enqueued, JobQueue  # for their types only: jobs import webhooks


class RedeliveryRefused(WebhookError):
    """No such delivery (``missing``), or one that is not failed."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


async def redeliver(
    store: Store, jobs: JobQueue, event_id: int, subscription_id: str
) -> tuple[DeliveryState, Enqueued]:
    """Make a failed delivery due now and queue the deliver job; return its state before, and the job."""
    before = await asyncio.to_thread(Outbox(store).redeliver, event_id, subscription_id)
    if before is None:
        raise RedeliveryRefused(
            f"trigger event {event_id} has no delivery to subscription {subscription_id!r}", missing=True
        )
    if before.status != "failed":
        what = "on its way (pending)" if before.status == "pending" else "delivered already"
        raise RedeliveryRefused(
            f"the delivery of trigger event {event_id} to {subscription_id} is {what}: only a failed one is sent again"
        )
    return before, await jobs.deliver_triggers()
