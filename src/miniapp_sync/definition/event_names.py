"""Event names that read as file paths are errors: samples are files named after events (D31c).

``check`` and ``package`` read an event's sample as one file name inside ``--samples`` whatever
the name holds, so a path-like name can no longer reach a file outside it; it is still refused
here, so the definition says what it means. Shopify's ``orders/create`` stays valid.
"""

from __future__ import annotations

import re
from typing import Any, Final

from miniapp_sync.definition.findings import Findings, Loc, get
from miniapp_sync.errors import preview

__all__ = ["lint_event_names"]

_PATH_LIKE: Final = re.compile(r"^[/\\~]|^[A-Za-z]:[/\\]|(?:^|[/\\])\.\.?(?:[/\\]|$)|[\x00-\x1f]")


def lint_event_names(document: dict[str, Any], findings: Findings) -> None:
    """Report each handler key or trigger event that reads as a file path."""
    handlers = get(document, "sync", "webhooks", "handlers")
    keys = handlers if isinstance(handlers, dict) else {}
    named: list[tuple[Loc, Any]] = [(("sync", "webhooks", "handlers", k), k) for k in keys]
    triggers = document.get("triggers")
    if isinstance(triggers, list):
        named += [(("triggers", i, "event"), t.get("event")) for i, t in enumerate(triggers) if isinstance(t, dict)]
    for loc, event in named:
        if isinstance(event, str) and _PATH_LIKE.search(event):
            findings.error(
                loc,
                f"event name {event!r} reads as a file path",
                code="path-like-event",
                expected="an event name such as 'order.created' or 'orders/create'",
                found=preview(event),
                hint="no leading '/', '\\' or '~', no drive letter, no '.' or '..' segment, no control characters",
            )
