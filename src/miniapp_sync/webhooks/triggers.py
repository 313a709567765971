"""Trigger events as subscribers and the pull API see them, and their signature (D27).

The body of a POST (and of one pull API item) is
``{id, event, tenant, ns, occurredAt, record, customer}``; ``record`` and ``customer`` are
``{contentType, code, partial, data}`` or null. A POST is signed the Standard Webhooks way
(``webhooks/signing.py``): ``webhook-id`` is the event's ``id``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson

from miniapp_sync import exactjson
from miniapp_sync.store import StoredRecord, TriggerEvent

View = dict[str, Any]  # a record as events show it: {contentType, code, partial, data}


def record_view(record: StoredRecord | None) -> View | None:
    """Return a stored record as a trigger event shows it."""
    if record is None:
        return None
    return {"contentType": record.content_type, "code": record.code, "partial": record.partial, "data": record.data}


def payload(record: View | None, customer: View | None) -> dict[str, Any]:
    """Return what the outbox keeps of an event beside its name: the record and the customer."""
    return {"record": record, "customer": customer}


def iso(timestamp: float) -> str:
    """Render epoch seconds as ISO 8601 UTC with milliseconds."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _head(event: TriggerEvent) -> dict[str, Any]:
    """Return the members of an event's body that precede its payload's."""
    return {
        "id": str(event.id),
        "event": event.event,
        "tenant": event.tenant,
        "ns": event.ns,
        "occurredAt": iso(event.occurred_at),
    }


def event_body(event: TriggerEvent) -> dict[str, Any]:
    """Return the JSON body of an event, for a POST or the pull API."""
    return {**_head(event), "record": event.payload.get("record"), "customer": event.payload.get("customer")}


def event_json(event: TriggerEvent, payload_json: str | None = None) -> bytes:
    """Return ``event_body`` as JSON; with ``payload_json`` (the payload as stored), without parsing it.

    What ``payload`` writes (``{"record": …, "customer": …}``, compact) is the body's last two
    members in their order, so it is spliced in after the others as is; anything else is parsed.
    """
    if payload_json is None:
        return orjson.dumps(event_body(event))
    if not payload_json.startswith('{"record":'):
        return orjson.dumps(event_body(replace(event, payload=exactjson.loads(payload_json))))
    head = orjson.dumps(_head(event))
    return head[:-1] + b"," + payload_json[1:].encode()
