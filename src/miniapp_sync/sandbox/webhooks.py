"""Salla-shaped webhook deliveries: ``{event, merchant, created_at, data}``, signed with HMAC-SHA256."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any, Final

import orjson

from miniapp_sync.sandbox import catalog
from miniapp_sync.sandbox.records import localize
from miniapp_sync.sandbox.shapes import Record

_DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def event_resource(event: str) -> str:
    """Return the resource whose records an event carries ('order.status.updated' → 'orders')."""
    if event == "abandoned.cart":
        return "abandonedCarts"
    for prefix, resource in (("order.", "orders"), ("customer.", "customers"), ("product.", "products")):
        if event.startswith(prefix):
            return resource
    raise ValueError(
        f"the sandbox sends no {event!r} webhooks; it sends order.*, customer.*, product.*, abandoned.cart"
    )


def sign(secret: str, body: bytes) -> str:
    """Return the lowercase hex HMAC-SHA256 of ``body`` (Salla's X-Salla-Signature)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def js_date(moment: datetime) -> str:
    """Render a moment as Salla's ``created_at`` does: 'Thu May 02 2024 14:03:14 GMT+0300'."""
    local = moment.astimezone(catalog.RIYADH)
    # Names spelled out rather than strftime's %a/%b, which follow the machine's locale.
    return f"{_DAYS[local.weekday()]} {_MONTHS[local.month - 1]} {local:%d %Y %H:%M:%S} GMT+0300"


def webhook_view(resource: str, record: Record) -> Record:
    """Return a stored record as a webhook's ``data`` carries it, in the store's language (Arabic)."""
    if resource == "customers":
        record = {k: v for k, v in record.items() if k != "groups"}
    elif resource == "abandonedCarts":
        # The current abandoned.cart model has no status, and items without amounts.
        items = [{"id": i["id"], "product_id": i["product_id"], "quantity": i["quantity"]} for i in record["items"]]
        record = {k: v for k, v in record.items() if k != "status"} | {"items": items}
    view: Record = localize(record, "ar")
    return view


def delivery(event: str, record: Record, *, merchant: int, secret: str, now: float) -> tuple[bytes, dict[str, str]]:
    """Return the raw body and headers of one signed delivery of ``record`` for ``event``."""
    body: dict[str, Any] = {
        "event": event,
        "merchant": merchant,
        "created_at": js_date(datetime.fromtimestamp(now, catalog.RIYADH)),
        "data": webhook_view(event_resource(event), record),
    }
    raw = orjson.dumps(body)
    headers = {
        "Content-Type": "application/json",
        "X-Salla-Signature": sign(secret, raw),
        "X-Salla-Security-Strategy": "Signature",
    }
    return raw, headers
