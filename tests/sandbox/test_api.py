"""The Admin API v2 routes: envelope, pagination, filters, detail shapes and error envelopes."""

from __future__ import annotations

import pytest

from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.sandbox.records import list_view

from .conftest import PATHS, GetJson, fetch_all, sample, shape_diff


async def test_list_answers_the_salla_envelope_with_a_pagination_block(sandbox: Sandbox, get_json: GetJson) -> None:
    status, body = await get_json(sandbox.api_url + "/products", params={"page": "2", "per_page": "10"})
    assert status == 200
    assert set(body) == {"status", "success", "data", "pagination"}
    assert (body["status"], body["success"]) == (200, True)
    base = sandbox.api_url + "/products"
    assert body["pagination"] == {
        "count": 10,
        "total": 37,
        "perPage": 10,
        "currentPage": 2,
        "totalPages": 4,
        "links": {"previous": f"{base}?page=1&per_page=10", "next": f"{base}?page=3&per_page=10"},
    }
    assert [r["id"] for r in body["data"]] == [r["id"] for r in sandbox.data["products"][10:20]]


async def test_a_single_page_has_empty_links_and_the_default_page_size_is_15(
    sandbox: Sandbox, get_json: GetJson
) -> None:
    _, whole = await get_json(sandbox.api_url + "/carts/abandoned", params={"per_page": "60"})
    assert whole["pagination"] == {
        "count": 9,
        "total": 9,
        "perPage": 60,
        "currentPage": 1,
        "totalPages": 1,
        "links": {},
    }
    _, default = await get_json(sandbox.api_url + "/products")
    assert (default["pagination"]["perPage"], default["pagination"]["count"]) == (15, 15)
    assert "previous" not in default["pagination"]["links"]


async def test_per_page_is_capped_at_per_page_max(get_json: GetJson) -> None:
    async with Sandbox(SandboxConfig(products=30, customers=1, orders=0, carts=0, per_page_max=12)) as sandbox:
        _, body = await get_json(sandbox.api_url + "/products", params={"per_page": "500"})
    assert body["pagination"]["perPage"] == 12
    assert len(body["data"]) == 12
    assert body["pagination"]["totalPages"] == 3


async def test_full_lists_answer_whole_orders_with_their_line_items(get_json: GetJson) -> None:
    config = SandboxConfig(products=10, customers=3, orders=5, carts=0, full_lists=True)
    async with Sandbox(config) as sandbox:
        _, body = await get_json(sandbox.api_url + "/orders", params={"per_page": "5"})
        _, detail = await get_json(sandbox.api_url + f"/orders/{body['data'][0]['id']}")
    assert body["data"][0] == detail["data"]
    assert all(order["items"] and "amounts" in order["items"][0] for order in body["data"])


@pytest.mark.parametrize("resource", list(PATHS))
@pytest.mark.parametrize("per_page", [1, 7, 60])
async def test_following_next_links_lists_every_record_exactly_once_by_ascending_id(
    sandbox: Sandbox, get_json: GetJson, resource: str, per_page: int
) -> None:
    records = await fetch_all(get_json, sandbox.api_url + PATHS[resource], per_page)
    ids = [r["id"] for r in records]
    assert ids == sorted(ids)
    assert ids == [r["id"] for r in sandbox.data[resource]]


async def test_a_page_past_the_end_is_empty(sandbox: Sandbox, get_json: GetJson) -> None:
    _, body = await get_json(sandbox.api_url + "/orders", params={"page": "9", "per_page": "10"})
    assert body["data"] == []
    assert body["pagination"]["count"] == 0
    assert body["pagination"]["totalPages"] == 3
    assert "next" not in body["pagination"]["links"]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"page": "0"}, "page"), ({"per_page": "x"}, "per_page"), ({"updated_after": "yesterday"}, "updated_after")],
)
async def test_bad_query_parameters_answer_422_naming_the_field(
    sandbox: Sandbox, get_json: GetJson, params: dict[str, str], field: str
) -> None:
    status, body = await get_json(sandbox.api_url + "/customers", params=params)
    assert status == 422
    assert body["success"] is False
    assert field in body["error"]["fields"]


async def test_updated_after_lists_records_changed_at_or_after_the_moment(sandbox: Sandbox, get_json: GetJson) -> None:
    changed = sandbox.mutate("customers", sandbox.data["customers"][3]["id"], city="Jeddah")
    since = changed["updated_at"]["date"][:19]  # naive: store time (Riyadh)
    records = await fetch_all(get_json, sandbox.api_url + "/customers", 5, updated_after=since)
    assert [r["id"] for r in records] == [changed["id"]]
    _, body = await get_json(sandbox.api_url + "/customers", params={"updated_after": "2024-05-01T00:00:00Z"})
    later = [r for r in sandbox.data["customers"] if r["updated_at"]["date"] >= "2024-05-01 03:00:00"]
    assert body["pagination"]["total"] == len(later)


async def test_links_keep_the_filters(sandbox: Sandbox, get_json: GetJson) -> None:
    _, body = await get_json(sandbox.api_url + "/orders", params={"per_page": "2", "created_after": "2020-01-01"})
    assert "created_after=2020-01-01" in body["pagination"]["links"]["next"]


@pytest.mark.parametrize("resource", list(PATHS))
async def test_list_and_detail_records_have_the_shapes_of_the_samples(
    sandbox: Sandbox, get_json: GetJson, resource: str
) -> None:
    listed = await fetch_all(get_json, sandbox.api_url + PATHS[resource], 60)
    page_sample = sample(f"api/{resource}.page1.json")["data"][0]
    detail_sample = sample(f"api/{resource}.detail.json")
    problems = []
    for record in listed:
        problems += shape_diff(page_sample, record, f"list {record['id']}")
        _, detail = await get_json(f"{sandbox.api_url}{PATHS[resource]}/{record['id']}")
        assert set(detail) == {"status", "success", "data"}
        problems += shape_diff(detail_sample["data"], detail["data"], f"detail {record['id']}")
    assert problems == []


async def test_order_lists_give_a_summary_and_details_the_amounts(sandbox: Sandbox, get_json: GetJson) -> None:
    order = sandbox.data["orders"][0]
    _, page = await get_json(sandbox.api_url + "/orders", params={"per_page": "1"})
    summary = page["data"][0]
    assert summary == list_view("orders", order)
    assert summary["total"] == order["amounts"]["total"]
    assert set(summary["items"][0]) == {"name", "quantity", "thumbnail"}
    _, detail = await get_json(f"{sandbox.api_url}/orders/{order['id']}")
    assert "total" not in detail["data"]
    assert detail["data"]["amounts"]["total"] == summary["total"]


async def test_unknown_records_answer_404_in_the_error_envelope(sandbox: Sandbox, get_json: GetJson) -> None:
    for url in ("/products/1", "/carts/abandoned/abc", "/nothing-here"):
        status, body = await get_json(sandbox.api_url + url)
        assert status == 404, url
        assert body["status"] == 404
        assert body["success"] is False
        assert body["error"]["code"] == "not_found"


async def test_accept_language_ar_answers_with_arabic_labels(sandbox: Sandbox, get_json: GetJson) -> None:
    customer = next(c for c in sandbox.data["customers"] if c["city"] == "Riyadh")
    _, english = await get_json(f"{sandbox.api_url}/customers/{customer['id']}")
    _, arabic = await get_json(f"{sandbox.api_url}/customers/{customer['id']}", headers={"Accept-Language": "ar"})
    assert (english["data"]["city"], english["data"]["country"]) == ("Riyadh", "Saudi Arabia")
    assert (arabic["data"]["city"], arabic["data"]["country"]) == ("الرياض", "السعودية")
