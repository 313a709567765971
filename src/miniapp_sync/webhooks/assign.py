"""Assign an unmatched delivery to an installation (D24a), then process it.

A delivery that verified with the MiniApp's own secret but matched no installation is kept as
``unmatched``. Once the operator knows whose it is (a store installed later, a metadata value
fixed), ``inbox assign`` gives it that installation, reads its event and transaction id as the
receiver would have, and queues it; the caller processes it (the CLI at once, the server's
processor when woken). Its headers were not kept, so an event or id read from a header is
not found: such a delivery is processed under the event its body names, or ignored.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from miniapp_sync import exactjson
from miniapp_sync.errors import WebhookError
from miniapp_sync.runtime import Runtime
from miniapp_sync.store import Inbox, InboxRow
from miniapp_sync.webhooks.identify import Delivery, extract_event, transaction_id


@dataclass(frozen=True, slots=True)
class Assignment:
    """An assigned row: its new state, and what was read from it."""

    row: InboxRow
    duplicate: bool


async def assign(runtime: Runtime, inbox: Inbox, row_id: int, installation_id: str) -> Assignment:
    """Give unmatched row ``row_id`` to ``installation_id``; raise WebhookError saying why it cannot be."""
    row = await asyncio.to_thread(inbox.get, row_id)
    if row is None:
        raise WebhookError(f"no inbox row {row_id}")
    if row.status != "unmatched":
        raise WebhookError(f"inbox row {row_id} is {row.status}, not unmatched: only unmatched rows are assigned")
    installation = await asyncio.to_thread(runtime.store.get_installation, installation_id)
    if installation is None or installation.status == "uninstalled":
        raise WebhookError(f"no installation {installation_id!r}: see `miniapp-sync installations`")
    if installation.ns != row.ns:
        raise WebhookError(
            f"inbox row {row_id} is a {row.ns!r} delivery; installation {installation_id} is of {installation.ns!r}"
        )
    app = runtime.apps.get(row.ns)
    if app is None:
        raise WebhookError(f"no definition of {row.ns!r} is loaded: pass it with --definition")
    try:
        body = exactjson.loads(row.body)
    except exactjson.JSONDecodeError:
        body = None
    webhook = app.definition.webhook
    delivery = Delivery(body, row.body)
    event = extract_event(webhook, delivery)
    key = transaction_id(webhook, event, delivery)
    outcome = await asyncio.to_thread(inbox.assign, row_id, installation_id, event, key)
    if outcome == "not_unmatched":
        raise WebhookError(f"inbox row {row_id} was assigned meanwhile")
    assigned = await asyncio.to_thread(inbox.get, row_id)
    if assigned is None:
        raise WebhookError(f"inbox row {row_id} was purged meanwhile")
    return Assignment(assigned, outcome == "duplicate")
