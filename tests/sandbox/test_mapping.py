"""Every generated record maps cleanly through the example Salla definition, over HTTP and offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from miniapp_sync import MappingPlan, compile_plan, load_definition, vocabulary
from miniapp_sync.mapping.records import MappedRecord
from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.sandbox.records import RESOURCES, SandboxData, list_view

from .conftest import PATHS, fetch_all

DEFINITION = Path(__file__).parents[2] / "examples" / "salla" / "definition.json5"
# Fields every record of a resource must come out with (not just the content type's required ones).
FILLED = {
    "products": ("code", "name", "unitPrice", "currency", "status", "externalUrl", "updatedAt"),
    "customers": ("code", "firstName", "lastName", "primaryEmail", "primaryPhone", "country", "updatedAt"),
    "orders": ("code", "orderNumber", "status", "totalAmount", "currency", "items", "customerCode", "createdAt"),
    "abandonedCarts": ("code", "status", "totalAmount", "items", "checkoutUrl", "customerCode", "updatedAt"),
}
EVENTS = ("order.created", "order.status.updated", "abandoned.cart", "customer.created", "product.updated")


@pytest.fixture(scope="module")
def plan() -> MappingPlan:
    return compile_plan(load_definition(DEFINITION, vocabulary=vocabulary()))


def problems_of(resource: str, record: dict[str, Any], mapped: MappedRecord) -> list[str]:
    found = [f"{resource} {record['id']}: {p.render()}" for p in mapped.problems]
    if mapped.rejected:
        found.append(f"{resource} {record['id']}: rejected")
    empty = [name for name in FILLED[resource] if mapped.data.get(name) in (None, "", [])]
    if empty:
        found.append(f"{resource} {record['id']}: empty {empty}")
    return found


async def test_every_record_served_maps_cleanly_through_the_example_definition(plan: MappingPlan) -> None:
    problems: list[str] = []
    async with Sandbox() as sandbox:
        headers = {"Authorization": f"Bearer {sandbox.config.access_token}", "Accept-Language": "en"}
        async with aiohttp.ClientSession(headers=headers) as http:

            async def get(url: str, **kwargs: Any) -> tuple[int, Any]:
                async with http.get(url, **kwargs) as response:
                    return response.status, orjson.loads(await response.read())

            for resource in RESOURCES:
                listed = await fetch_all(get, sandbox.api_url + PATHS[resource], 60)
                assert len(listed) == len(sandbox.data[resource])
                for record in listed:
                    status, detail = await get(f"{sandbox.api_url}{PATHS[resource]}/{record['id']}")
                    assert status == 200
                    mapped = plan.resources[resource].mapper({**record, **detail["data"]})
                    assert mapped.data["code"] == str(record["id"])
                    problems += problems_of(resource, record, mapped)
    assert problems == []


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_records_of_other_seeds_map_cleanly_too(plan: MappingPlan, seed: int) -> None:
    data = SandboxData({"products": 200, "customers": 120, "orders": 250, "abandonedCarts": 60}, seed)
    problems: list[str] = []
    for resource in RESOURCES:
        for record in data.records[resource]:
            mapped = plan.resources[resource].mapper({**list_view(resource, record), **record})
            problems += problems_of(resource, record, mapped)
    assert problems == []


def test_list_records_alone_map_for_the_resources_synced_without_details(plan: MappingPlan) -> None:
    data = SandboxData({"products": 20, "customers": 30, "orders": 20, "abandonedCarts": 30}, 5)
    for resource in ("customers", "abandonedCarts"):  # expandDetails: false in the example
        for record in data.records[resource]:
            assert problems_of(resource, record, plan.resources[resource].mapper(list_view(resource, record))) == []


@pytest.mark.parametrize("event", EVENTS)
def test_every_webhook_maps_cleanly_through_its_handler(plan: MappingPlan, event: str) -> None:
    sandbox = Sandbox(SandboxConfig(seed=6))
    resource = {"order": "orders", "abandoned": "abandonedCarts", "customer": "customers", "product": "products"}
    for record in sandbox.data[resource[event.split(".")[0]]]:
        raw, _ = sandbox.webhook(event, record)
        body = orjson.loads(raw)
        mapped = plan.handlers[event].map(body)
        assert not mapped.rejected, mapped.reason()
        assert mapped.problems == ()
        assert mapped.data["code"] == str(record["id"])
        assert plan.customer is not None
        if event != "product.updated":
            customer = plan.customer.extract(event, body)
            assert customer is not None
            assert not customer.rejected
            assert customer.data["primaryPhone"].startswith("+9665")
