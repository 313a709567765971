"""One store, one installation (D24): a match value belongs to at most one active installation of a ns.

Deliveries on the shared URL are routed by a metadata value (Salla's ``storeId``, a Shopify shop
domain, …). If a second installation could hold the same value, the tenant that installed last
with another's store id would receive — or make refused — the first one's deliveries. So an
install whose metadata claims a value another live installation of the ns holds is refused, with
an error naming that installation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from miniapp_sync.definition.model import Definition
from miniapp_sync.errors import InstallationError
from miniapp_sync.store import Installation, Store
from miniapp_sync.webhooks.identify import as_text
from miniapp_sync.webhooks.providers import fold, match_keys


def claimed(definition: Definition, metadata: Mapping[str, Any]) -> dict[str, str]:
    """Return the match values ``metadata`` claims, by key (folded as the receiver compares them)."""
    found = {key: as_text(metadata.get(key)) for key in match_keys(definition)}
    return {key: fold(text) for key, text in found.items() if text is not None}


def refuse_capture(
    store: Store, definition: Definition, installation: Installation, metadata: Mapping[str, Any]
) -> None:
    """Raise InstallationError when another live installation of the ns holds a value ``metadata`` claims."""
    wanted = claimed(definition, metadata)
    if not wanted:
        return
    for other in store.list_installations():
        if other.ns != installation.ns or other.status == "uninstalled":
            continue
        if other.id == installation.id or other.tenant == installation.tenant:
            continue  # itself: one installation per (tenant, ns), and an OAuth draft has no id yet
        theirs = claimed(definition, other.metadata)
        for key, value in wanted.items():
            if any(fold(text) == value for text in theirs.values()):
                raise InstallationError(
                    f"{key} {as_text(metadata.get(key))!r} already belongs to installation {other.id} of tenant "
                    f"{other.tenant!r} ({installation.ns}): one store routes its webhooks to one installation; "
                    f"uninstall that one first if the store moved"
                )


def without_claims(definition: Definition, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``metadata`` without its match values (what a refused install keeps)."""
    keys = set(match_keys(definition))
    return {k: v for k, v in metadata.items() if k not in keys}
