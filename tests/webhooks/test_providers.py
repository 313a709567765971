"""D24 rule 1 for each known provider: where a delivery names its store, and how the values compare."""

from __future__ import annotations

from typing import Any

import pytest

from miniapp_sync.definition.model import Definition
from miniapp_sync.webhooks.providers import fold, match_keys, provider_of, well_known_place

from .conftest import Harness


@pytest.mark.parametrize(
    ("ns", "api_base", "provider"),  # not base_url: pytest-base-url has a fixture of that name
    [
        ("salla", None, "salla"),
        ("mystore", "https://api.salla.dev/admin/v2", "salla"),
        ("shop", "https://{{shop}}.myshopify.com/admin/api/2024-07", "shopify"),
        ("woo", None, "woocommerce"),
        ("wc", "https://{{storeUrl}}/wp-json/wc/v3", "woocommerce"),
        ("zid", None, "zid"),
        ("acme", "https://api.acme.example", None),
    ],
)
def test_the_provider_is_known_from_the_ns_or_the_base_url(ns: str, api_base: str | None, provider: str | None) -> None:
    document: dict[str, Any] = {"ns": ns, "sync": {"baseUrl": api_base} if api_base else {}}
    assert provider_of(Definition.model_validate(document)) == provider


def test_match_values_ignore_case_scheme_and_trailing_slash() -> None:
    assert fold("https://Shop.Example.com/") == fold("shop.example.com") == "shop.example.com"
    assert fold(" 1305146709 ") == "1305146709"


def test_tenant_extraction_wins_over_the_well_known_place() -> None:
    document = {"ns": "salla", "webhook": {"tenantExtraction": {"path": "$.store", "matchKey": "shopKey"}}}
    assert match_keys(Definition.model_validate(document)) == ("shopKey",)
    place = well_known_place(Definition.model_validate({"ns": "salla"}))
    assert place is not None
    assert place.match_keys == ("storeId", "merchantId")


async def test_a_woocommerce_delivery_is_routed_by_its_webhook_source_header(harness: Harness) -> None:
    def as_woocommerce(document: dict[str, Any]) -> None:
        document["ns"] = document["name"] = "woocommerce"
        del document["webhook"]["tenantExtraction"]
        for trigger in document["triggers"]:
            trigger["type"] = "miniapps:woocommerce"

    app = harness.serve(as_woocommerce)
    harness.runtime.installations.configure(app.ns, {"webhookSecret": harness.sandbox.config.webhook_secret})
    harness.install("north", ns="woocommerce", metadata={"storeUrl": "https://north.example.com"})
    south = harness.install("south", ns="woocommerce", metadata={"storeUrl": "https://south.example.com"})
    raw, headers = harness.sandbox.webhook("order.created")
    source = {**headers, "X-WC-Webhook-Source": "https://SOUTH.example.com/"}
    assert (await harness.post(raw, source, ns="woocommerce"))[0] == 200
    assert [(r.installation_id, r.status) for r in harness.rows()] == [(south.id, "pending")]
    unknown = {**headers, "X-WC-Webhook-Source": "https://west.example.com/"}
    assert (await harness.post(raw, unknown, ns="woocommerce"))[0] == 200  # verified: kept for inbox assign
    assert harness.rows()[-1].status == "unmatched"
