"""Where each known provider names the store a delivery is for (D24, rule 1 of the shared URL).

A definition written from the guide has no ``webhook.tenantExtraction``: the runtime then reads
the provider's own place when the definition's ns or ``sync.baseUrl`` says which provider it is,
and matches it against the installation metadata keys that provider's installs carry.

Departure from DESIGN D24, which names "Zid's store id header": the stored Zid documentation
(spec/providers-and-webhooks.md §1.2 and its comparison table) shows the store id in the body
(``store_id``), and no header; the body is what is read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from miniapp_sync.definition.model import Definition


@dataclass(frozen=True, slots=True)
class Place:
    """Where a provider names the store: a body path or a header, and the metadata keys it matches."""

    provider: str
    source: str  # body | header
    path: str
    match_keys: tuple[str, ...]

    def describe(self) -> str:
        where = f"header {self.path}" if self.source == "header" else f"body {self.path}"
        return f"{self.provider}: {where} matched against metadata {' / '.join(self.match_keys)}"


PLACES: Final = {
    "salla": Place("Salla", "body", "$.merchant", ("storeId", "merchantId")),
    "shopify": Place("Shopify", "header", "X-Shopify-Shop-Domain", ("shopDomain", "shop", "shopHost")),
    "woocommerce": Place("WooCommerce", "header", "X-WC-Webhook-Source", ("storeUrl", "siteUrl")),
    "zid": Place("Zid", "body", "$.store_id", ("storeId",)),
}
# How a definition says which provider it is: its ns, else a marker in its sync.baseUrl.
_NS: Final = {"salla": "salla", "shopify": "shopify", "woocommerce": "woocommerce", "woo": "woocommerce", "zid": "zid"}
_URL_MARKERS: Final = (
    ("salla.dev", "salla"),
    ("salla.sa", "salla"),
    ("myshopify.com", "shopify"),
    ("/wp-json/wc/", "woocommerce"),
    ("zid.sa", "zid"),
)


def provider_of(definition: Definition) -> str | None:
    """Return the known provider a definition integrates (salla, shopify, woocommerce, zid), or None."""
    by_ns = _NS.get((definition.ns or "").lower())
    if by_ns is not None:
        return by_ns
    base = ((definition.sync.base_url if definition.sync is not None else None) or "").lower()
    return next((provider for marker, provider in _URL_MARKERS if marker in base), None)


def well_known_place(definition: Definition) -> Place | None:
    """Return where the definition's provider names the store, when it is a known provider."""
    provider = provider_of(definition)
    return PLACES[provider] if provider is not None else None


def fold(text: str) -> str:
    """Return a match value in the form compared: case, scheme and trailing slash do not count (site URLs)."""
    folded = text.strip().lower()
    for scheme in ("https://", "http://"):
        folded = folded.removeprefix(scheme)
    return folded.rstrip("/")


def match_keys(definition: Definition) -> tuple[str, ...]:
    """Return the installation metadata keys deliveries on the shared URL are matched on (D24)."""
    webhook = definition.webhook
    if webhook is not None and webhook.tenant_extraction is not None:
        return (webhook.tenant_extraction.match_key,)
    place = well_known_place(definition)
    return place.match_keys if place is not None else ()
