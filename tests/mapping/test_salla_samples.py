"""The bundled Salla samples map to the expected records (data files beside this test)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from miniapp_sync import MappingPlan, compile_plan, load_definition, vocabulary
from miniapp_sync.definition import Definition
from miniapp_sync.webhooks.identify import Delivery, extract_event, transaction_id

ROOT = Path(__file__).resolve().parents[2] / "examples" / "salla"
EXPECTED = Path(__file__).resolve().parent / "data" / "salla"


@pytest.fixture(scope="module")
def salla() -> tuple[Definition, MappingPlan]:
    definition = load_definition(ROOT / "definition.json5", vocabulary=vocabulary())
    return definition, compile_plan(definition)


def expected(name: str) -> Any:
    return json.loads((EXPECTED / f"{name}.expected.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("resource", ["products", "customers", "orders", "abandonedCarts"])
def test_list_page_with_details_maps_to_expected_records(salla: tuple[Definition, MappingPlan], resource: str) -> None:
    _, plan = salla
    page = json.loads((ROOT / "samples" / "api" / f"{resource}.page1.json").read_text(encoding="utf-8"))
    detail = json.loads((ROOT / "samples" / "api" / f"{resource}.detail.json").read_text(encoding="utf-8"))
    # The first list record is enriched by its detail response, detail winning (D9).
    records = [{**page["data"][0], **detail["data"]}, *page["data"][1:]]
    mapped = [plan.resources[resource].mapper(record) for record in records]
    assert [m.reason() for m in mapped if m.rejected] == []
    assert [m.data for m in mapped] == expected(resource)


@pytest.mark.parametrize(
    "event", ["order.created", "order.status.updated", "abandoned.cart", "customer.created", "product.updated"]
)
def test_webhook_sample_maps_to_expected_record(salla: tuple[Definition, MappingPlan], event: str) -> None:
    definition, plan = salla
    raw = (ROOT / "samples" / f"{event}.json").read_bytes()
    body = orjson.loads(raw)
    delivery = Delivery(body=body, raw=raw)
    want = expected(event)
    assert extract_event(definition.webhook, delivery) == want["event"] == event
    assert transaction_id(definition.webhook, event, delivery) == want["transactionId"]
    handler = plan.handlers[event]
    assert (handler.content_type, handler.operation) == (want["contentType"], want["operation"])
    record = handler.map(body)
    assert not record.rejected, record.reason()
    assert record.data == want["record"]
    customer = plan.customer.extract(event, body) if plan.customer else None
    assert (customer.data if customer else None) == want["customer"]


def test_order_sample_covers_several_items_a_discount_and_a_customer(salla: tuple[Definition, MappingPlan]) -> None:
    order = expected("order.created")["record"]
    assert len(order["items"]) == 3
    assert sum(item["totalAmount"] for item in order["items"]) == order["subtotalAmount"]
    assert order["discountCodes"] == "WELCOME10"
    assert order["discountAmount"] > 0
    assert order["customerCode"] == expected("order.created")["customer"]["code"]
    assert order["createdAt"] == "2024-05-02T11:03:11Z"  # 14:03:11 in Riyadh (UTC+3)
