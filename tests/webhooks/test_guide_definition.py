"""A definition written from the guide alone, over real HTTP through the documented shared URL.

``examples/salla-guide/definition.json5`` has no ``tenantExtraction`` and the documented
``transactionId: { path: '$.data.id' }``. On main its status updates were answered 200 and
dropped as duplicates (issue #13 item 1), and without ``tenantExtraction`` every delivery on the
shared URL was parked ``unmatched`` (item 2).
"""

from __future__ import annotations

import hashlib
import hmac

import orjson

from miniapp_sync.definition.loader import load_file
from miniapp_sync.runtime import load_miniapp
from miniapp_sync.store import Outbox

from .conftest import ROOT, SECRET, Harness

GUIDE = ROOT / "examples" / "salla-guide" / "definition.json5"
# What the guide's userDetails mapping stores: no storeId, so Salla's `merchant` matches nothing.
GUIDE_METADATA = {"uid": "181690847", "name": "Bait Alqahwa"}


def serve_guide(harness: Harness) -> None:
    harness.runtime.add(load_miniapp(GUIDE))
    harness.runtime.installations.configure("salla", {"webhookSecret": SECRET})


async def test_guide_definition_processes_every_status_update_of_an_order_through_the_shared_url(
    harness: Harness,
) -> None:
    serve_guide(harness)
    installation = harness.install(metadata=GUIDE_METADATA)
    (order,) = harness.sandbox.add("orders")
    created = harness.sandbox.webhook(
        "order.created", harness.sandbox.mutate("orders", order["id"], status="under_review")
    )
    assert (await harness.post(*created))[0] == 200
    updates = []
    for slug in ("in_progress", "shipped", "delivered"):
        update = harness.sandbox.webhook(
            "order.status.updated", harness.sandbox.mutate("orders", order["id"], status=slug)
        )
        updates.append(update)
        assert (await harness.post(*update))[0] == 200
    for resend in (created, *updates):  # identical resends: answered 200, processed once
        assert (await harness.post(*resend))[0] == 200
    await harness.process()

    rows = harness.rows()
    assert [r.status for r in rows] == ["done"] * 4
    assert {r.installation_id for r in rows} == {installation.id}
    assert [r.reused for r in rows] == [False, False, True, True]  # same order id, other bodies
    stored = harness.record(installation, "ecommerce:orders", order["id"])
    assert stored is not None
    last = orjson.loads(updates[-1][0])["data"]["status"]["name"]
    assert stored.data["status"] == last
    events = Outbox(harness.runtime.store).events("acme")
    assert [e.event for e in events] == ["order.created"] + ["order.status.updated"] * 3


async def test_a_customer_created_after_an_order_with_the_same_data_id_is_not_a_duplicate(harness: Harness) -> None:
    serve_guide(harness)
    harness.install(metadata=GUIDE_METADATA)
    (order,) = harness.sandbox.add("orders")
    (customer,) = harness.sandbox.add("customers")
    customer = {**customer, "id": order["id"]}  # two kinds of record that share a data.id
    assert (await harness.send("order.created", order))[0] == 200
    assert (await harness.send("customer.created", customer))[0] == 200
    assert [(r.event, r.status) for r in harness.rows()] == [
        ("order.created", "pending"),
        ("customer.created", "ignored"),  # stored under its own key: no handler here, but not dropped
    ]


async def test_shared_url_without_tenant_extraction_finds_the_installation_by_salla_merchant(harness: Harness) -> None:
    serve_guide(harness)
    acme = harness.install("acme", metadata={"storeId": str(harness.merchant)})
    globex = harness.install("globex", metadata={"storeId": "777"})
    assert (await harness.send("order.created"))[0] == 200
    raw, headers = harness.sandbox.webhook("order.created")
    other = orjson.dumps({**orjson.loads(raw), "merchant": 777})
    assert (await harness.post(other, {**headers, "X-Salla-Signature": _sign(other)}))[0] == 200
    assert [r.installation_id for r in harness.rows()] == [acme.id, globex.id]


async def test_shared_url_without_tenant_extraction_uses_the_one_installation_whose_own_secret_verifies(
    harness: Harness,
) -> None:
    serve_guide(harness)
    harness.runtime.installations.configure("salla", {"webhookSecret": ""})
    harness.install("acme", metadata=GUIDE_METADATA, credentials={"webhookSecret": "acme-secret"})
    globex = harness.install("globex", metadata=GUIDE_METADATA, credentials={"webhookSecret": SECRET})
    assert (await harness.send("order.created"))[0] == 200
    assert [(r.installation_id, r.status) for r in harness.rows()] == [(globex.id, "pending")]


def _sign(raw: bytes) -> str:
    return hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()


def test_guide_definition_has_the_documented_shapes_the_issue_names() -> None:
    document, _ = load_file(GUIDE)
    assert "tenantExtraction" not in document["webhook"]
    assert document["webhook"]["transactionId"] == {"path": "$.data.id"}
    assert document["webhook"]["customerExtraction"]["mapping"]["primaryPhone"] == "mobile"
    assert set(document["sync"]["webhooks"]["handlers"]) == {"order.created", "order.status.updated"}


def order_from(harness: Harness, customer_id: int, mobile: object, email: str) -> tuple[bytes, dict[str, str]]:
    """An order.created whose customer has this id, mobile and email (the guide maps mobile as is)."""
    (order,) = harness.sandbox.add("orders")
    raw, _ = harness.sandbox.webhook("order.created", order)
    body = orjson.loads(raw)
    body["data"]["customer"].update(id=customer_id, mobile=mobile, email=email)
    signed = orjson.dumps(body)
    return signed, {"Content-Type": "application/json", "X-Salla-Signature": _sign(signed)}


async def test_customers_are_matched_by_phone_in_e164_with_the_installation_s_default_country(
    harness: Harness,
) -> None:
    serve_guide(harness)
    installation = harness.install(metadata=GUIDE_METADATA)  # a Salla store: Saudi numbers by default
    # Salla sends the national number as an integer; the docs map it as is (primaryPhone: 'mobile').
    assert (await harness.post(*order_from(harness, 1001, 551234567, "first@example.com")))[0] == 200
    # The same person, checked out as a guest under another id and email, typing the local form.
    assert (await harness.post(*order_from(harness, 2002, "0551234567", "second@example.com")))[0] == 200
    await harness.process()
    first = harness.record(installation, "core:customer", 1001)
    assert first is not None
    assert first.data["primaryPhone"] == "+966551234567"  # stored normalised, so the index serves the lookup
    assert harness.record(installation, "core:customer", 2002) is None  # matched, not created
    orders = harness.runtime.store.list_records(installation.id, "ecommerce:orders")
    assert {o.data.get("customerCode") for o in orders} == {"1001"}


async def test_an_installation_s_default_country_reads_national_numbers(harness: Harness) -> None:
    serve_guide(harness)
    installation = harness.install(metadata={**GUIDE_METADATA, "defaultCountry": "AE"})
    assert (await harness.post(*order_from(harness, 1001, "050 123 4567", "a@example.com")))[0] == 200
    await harness.process()
    customer = harness.record(installation, "core:customer", 1001)
    assert customer is not None
    assert customer.data["primaryPhone"] == "+971501234567"
