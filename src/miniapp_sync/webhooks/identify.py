"""Identify a delivery: its event name (eventExtraction) and its transaction id (D26)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from miniapp_sync.definition.rules import MISSING
from miniapp_sync.definition.webhook_model import TransactionId, ValueSource, Webhook
from miniapp_sync.mapping.paths import compile_path


@dataclass(frozen=True)
class Delivery:
    """What a delivery carries: the parsed body, the raw bytes, headers and query parameters."""

    body: Any
    raw: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Header names are case-insensitive: keep one lowercased view.
        object.__setattr__(self, "headers", {k.lower(): v for k, v in dict(self.headers).items()})
        object.__setattr__(self, "query", dict(self.query))

    @classmethod
    def lowercased(cls, body: Any, raw: bytes, headers: dict[str, str], query: dict[str, str]) -> Delivery:
        """Build a delivery from header names lowercased already (as ASGI gives them), without copying."""
        delivery = object.__new__(cls)
        for name, value in (("body", body), ("raw", raw), ("headers", headers), ("query", query)):
            object.__setattr__(delivery, name, value)
        return delivery


def as_text(value: Any) -> str | None:
    """Render a scalar as event/id text; integral floats lose their '.0'."""
    if value is MISSING or value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def read(delivery: Delivery, source: str, path: str) -> str | None:
    """Read one value from the body (a path), a header (case-insensitive) or the query."""
    if source == "header":
        return as_text(delivery.headers.get(path.lower(), MISSING))
    if source == "query":
        return as_text(delivery.query.get(path, MISSING))
    return as_text(compile_path(path).get(delivery.body))


def extract_event(webhook: Webhook | None, delivery: Delivery) -> str | None:
    """Return the event name: composite parts joined (missing parts skipped), else path, else fallback."""
    extraction = webhook.event_extraction if webhook else None
    if extraction is None:
        return None
    event: str | None
    if extraction.composite_strategy is not None:
        parts = [read(delivery, p.source, p.path) for p in extraction.composite_strategy.parts]
        event = extraction.composite_strategy.separator.join(p for p in parts if p) or None
    else:
        event = read(delivery, extraction.source, extraction.path or "")
    if event is None and extraction.fallback is not None:
        fallback: ValueSource = extraction.fallback
        event = read(delivery, fallback.source, fallback.path)
    return event


def transaction_id(webhook: Webhook | None, event: str | None, delivery: Delivery) -> str | None:
    """Return the delivery's transaction id: the non-empty values of its paths, joined (D26).

    With ``fallback: 'generate'`` and no value, the SHA-256 of the raw body is used, so that an
    identical resend still de-duplicates. None means the delivery cannot be de-duplicated.
    """
    config: TransactionId | None = webhook.transaction_id if webhook else None
    if config is None:
        return None
    chosen = config.overrides.get(event or "", config)
    # A path may name a header as 'header:X-GitHub-Delivery' (as totalProperty may, D8).
    values = [
        read(delivery, "header", path[7:]) if path.startswith("header:") else read(delivery, "body", path)
        for path in chosen.all_paths
    ]
    joined = config.separator.join(v for v in values if v)
    if joined:
        return joined
    if config.fallback == "generate":
        return "sha256:" + hashlib.sha256(delivery.raw).hexdigest()
    return None
