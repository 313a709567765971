"""Generated records: deterministic per seed, consistent with each other, and changeable while serving."""

from __future__ import annotations

from datetime import datetime

import orjson
import pytest

from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.sandbox.catalog import RIYADH, SNAPSHOT
from miniapp_sync.sandbox.records import RESOURCES, SandboxData, moment, resource_key
from miniapp_sync.testing import FakeClock

from .conftest import SMALL, GetJson, fetch_all

COUNTS = {"products": 40, "customers": 25, "orders": 60, "abandonedCarts": 15}


def dump(data: SandboxData) -> bytes:
    return orjson.dumps(data.records)


def test_the_same_seed_gives_the_same_records_and_another_seed_others() -> None:
    assert dump(SandboxData(COUNTS, 7)) == dump(SandboxData(COUNTS, 7))
    assert dump(SandboxData(COUNTS, 7)) != dump(SandboxData(COUNTS, 8))


def test_changing_how_many_orders_leaves_the_products_alone() -> None:
    few, many = SandboxData(COUNTS, 3), SandboxData(COUNTS | {"orders": 90}, 3)
    assert orjson.dumps(few.records["products"]) == orjson.dumps(many.records["products"])


def test_an_unfiltered_select_is_the_stored_list_not_a_copy() -> None:
    # A list endpoint serves one page of it: copying the whole list for each page made a
    # 500,000-record sync wait on the sandbox.
    data = SandboxData(COUNTS, 5)
    assert data.select("products") is data.records["products"]
    late = datetime(2100, 1, 1, tzinfo=RIYADH)
    assert data.select("products", updated_after=late) == []


def test_counts_follow_the_config_and_ids_are_unique_and_ascending() -> None:
    sandbox = Sandbox(SandboxConfig(products=11, customers=7, orders=13, carts=5))
    assert {k: len(v) for k, v in sandbox.data.items()} == {
        "products": 11,
        "customers": 7,
        "orders": 13,
        "abandonedCarts": 5,
    }
    for resource in RESOURCES:
        ids = [r["id"] for r in sandbox.data[resource]]
        assert ids == sorted(set(ids)), resource


def test_orders_and_carts_refer_to_existing_customers_and_products() -> None:
    data = SandboxData(COUNTS, 1)
    customers = {c["id"]: c for c in data.records["customers"]}
    products = {p["id"]: p for p in data.records["products"]}
    for order in data.records["orders"]:
        assert order["customer"]["id"] in customers
        assert order["customer"]["email"] == customers[order["customer"]["id"]]["email"]
        for item in order["items"]:
            assert products[item["product"]["id"]]["name"] == item["name"]
    for cart in data.records["abandonedCarts"]:
        assert cart["customer"]["id"] in customers
        assert all(item["product_id"] in products for item in cart["items"])


def test_order_amounts_add_up() -> None:
    for order in SandboxData(COUNTS, 2).records["orders"]:
        amounts = order["amounts"]
        items = sum(float(i["amounts"]["total"]["amount"]) for i in order["items"])
        assert float(amounts["sub_total"]["amount"]) == pytest.approx(items)
        discount = sum(float(d["discount"]) for d in amounts["discounts"])
        added = sum(float(amounts[k]["amount"]) for k in ("sub_total", "shipping_cost", "cash_on_delivery"))
        expected = added - discount + float(amounts["tax"]["amount"]["amount"])
        assert float(amounts["total"]["amount"]) == pytest.approx(expected, abs=0.011)


def test_records_are_dated_before_the_snapshot_and_updated_after_created() -> None:
    data = SandboxData(COUNTS, 4)
    for order in data.records["orders"]:
        assert moment(order["date"]) <= moment(order["updated_at"]) <= SNAPSHOT
    for cart in data.records["abandonedCarts"]:
        assert moment(cart["created_at"]) <= moment(cart["updated_at"]) <= SNAPSHOT
    assert all(moment(p["updated_at"]) <= SNAPSHOT for p in data.records["products"])


def test_names_are_arabic_and_english() -> None:
    names = [p["name"] for p in SandboxData(COUNTS, 1).records["products"]]
    arabic = [n for n in names if any("\u0600" <= ch <= "\u06ff" for ch in n)]
    assert 0 < len(arabic) < len(names)


async def test_mutate_changes_a_record_and_moves_updated_at_after_every_other_change(
    sandbox: Sandbox, get_json: GetJson
) -> None:
    order_id = sandbox.data["orders"][0]["id"]
    changed = sandbox.mutate("orders", order_id, status="canceled")
    assert changed["status"]["slug"] == "canceled"
    newest = max(moment(r["updated_at"]) for r in sandbox.data["orders"] if r["id"] != order_id)
    assert moment(changed["updated_at"]) > newest
    _, detail = await get_json(f"{sandbox.api_url}/orders/{order_id}")
    assert detail["data"]["status"]["name"] == "Canceled"
    product = sandbox.mutate("products", sandbox.data["products"][0]["id"], quantity=3)
    assert moment(product["updated_at"]) > moment(changed["updated_at"])
    assert isinstance(product["updated_at"], str)  # products keep their naive string


def test_mutate_stamps_follow_the_injected_clock_once_it_is_past_the_data(clock: FakeClock) -> None:
    sandbox = Sandbox(SMALL, clock=clock)
    early = sandbox.mutate("customers", sandbox.data["customers"][1]["id"], city="Abha")  # the clock says 2023
    assert moment(early["updated_at"]) > max(moment(p["updated_at"]) for p in sandbox.data["products"])
    clock.advance(datetime(2025, 1, 1, tzinfo=RIYADH).timestamp() - clock.now())
    changed = sandbox.mutate("customers", sandbox.data["customers"][0]["id"], first_name="Lulu")
    assert changed["updated_at"]["date"] == "2025-01-01 00:00:00.000000"
    assert changed["first_name"] == "Lulu"


async def test_added_records_are_listed_and_refer_to_existing_records(sandbox: Sandbox, get_json: GetJson) -> None:
    before = len(sandbox.data["orders"])
    added = sandbox.add("orders", 3)
    assert len(sandbox.data["orders"]) == before + 3
    assert added == sandbox.data["orders"][-3:]
    customer_ids = {c["id"] for c in sandbox.data["customers"]}
    assert all(order["customer"]["id"] in customer_ids for order in added)
    listed = await fetch_all(get_json, sandbox.api_url + "/orders", 60)
    assert [r["id"] for r in listed[-3:]] == [r["id"] for r in added]
    for resource in ("products", "customers", "carts"):
        (record,) = sandbox.add(resource)
        status, _ = await get_json(sandbox.api_url + {"carts": "/carts/abandoned"}.get(resource, "/" + resource))
        assert status == 200
        assert sandbox.data[resource_key(resource)][-1] is record


async def test_deleted_records_leave_lists_and_details(sandbox: Sandbox, get_json: GetJson) -> None:
    gone = sandbox.data["customers"][5]["id"]
    sandbox.delete("customers", gone)
    listed = await fetch_all(get_json, sandbox.api_url + "/customers", 60)
    assert gone not in [r["id"] for r in listed]
    assert len(listed) == SMALL.customers - 1
    assert (await get_json(f"{sandbox.api_url}/customers/{gone}"))[0] == 404
    with pytest.raises(KeyError):
        sandbox.delete("customers", gone)
    with pytest.raises(KeyError):
        sandbox.mutate("customers", gone, city="Abha")


async def test_created_after_lists_records_added_since(sandbox: Sandbox, get_json: GetJson) -> None:
    (added,) = sandbox.add("carts")
    since = added["created_at"]["date"][:19]
    listed = await fetch_all(get_json, sandbox.api_url + "/carts/abandoned", 60, created_after=since)
    assert [r["id"] for r in listed] == [added["id"]]


def test_resource_names_accept_aliases_and_refuse_unknown_ones() -> None:
    assert resource_key("carts") == resource_key("carts/abandoned") == "abandonedCarts"
    with pytest.raises(ValueError, match="unknown sandbox resource"):
        resource_key("invoices")


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"rate_limit": 0}, "rate_limit"), ({"per_page_max": 0}, "per_page_max"), ({"latency": -1}, "latency")],
)
def test_bad_configs_are_refused(changes: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SandboxConfig(**changes)  # type: ignore[arg-type]


def test_orders_without_customers_or_products_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one customer and one product"):
        Sandbox(SandboxConfig(customers=0))
