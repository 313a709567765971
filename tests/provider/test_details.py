"""Details: {id} filled and quoted, unwrapped, merged over the list record; 404 kept, failures isolated (D8-D10)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from aiohttp import web

from miniapp_sync.definition.model import Resource
from miniapp_sync.provider import ProviderClient, ProviderHTTPError, ResponseShapeError, RetryPolicy, fetch_details
from miniapp_sync.provider.details import SETTLED

from .conftest import SEED, json_response

MakeClient = Callable[..., ProviderClient]


def resource(details: str | None = "/products/{id}", *, data: str = "data", id_property: str = "id") -> Resource:
    endpoints: dict[str, Any] = {"list": {"url": "/products"}}
    if details:
        endpoints["details"] = {"url": details, "queryParams": {"lang": "en"}}
    return Resource.model_validate(
        {
            "contentType": "core:product",
            "endpoints": endpoints,
            "responseMapping": {"dataProperty": data},
            "idProperty": id_property,
            "apiMapping": {"code": "id"},
        }
    )


def by_id(answers: dict[str, Callable[[], web.Response]]) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        return answers[request.match_info["tail"].rsplit("/", 1)[-1]]()

    return handler


async def test_details_are_unwrapped_and_merged_over_the_list_record(provider: Any, make_client: MakeClient) -> None:
    provider.handler = by_id(
        {"1": lambda: json_response({"status": 200, "data": {"id": 1, "price": 20, "description": "long"}})}
    )
    listed = [{"id": 1, "name": "Oud", "price": 10}]
    [result] = await fetch_details(make_client(), resource(), listed, resource_key="products")
    assert result.ok
    assert result.status == "ok"
    assert result.record == {"id": 1, "name": "Oud", "price": 20, "description": "long"}
    assert listed == [{"id": 1, "name": "Oud", "price": 10}]  # the caller's record is not changed
    assert provider.requests[0].path == "/products/1"
    assert provider.requests[0].query == {"lang": "en"}


async def test_a_detail_that_is_not_wrapped_is_used_whole(provider: Any, make_client: MakeClient) -> None:
    provider.handler = by_id({"1": lambda: json_response({"id": 1, "sku": "A"})})
    [result] = await fetch_details(make_client(), resource(), [{"id": 1}], resource_key="products")
    assert result.record == {"id": 1, "sku": "A"}


async def test_a_404_keeps_the_list_record_with_a_warning(provider: Any, make_client: MakeClient) -> None:
    provider.handler = by_id({"7": lambda: json_response({"error": "not found"}, status=404)})
    [result] = await fetch_details(make_client(), resource(), [{"id": 7, "name": "x"}], resource_key="products")
    assert (result.status, result.ok, result.record) == ("not_found", True, {"id": 7, "name": "x"})
    assert result.warning == "products record 7: details answered 404; kept the list record"


async def test_a_failure_after_retries_is_a_failed_result_and_the_rest_goes_on(
    provider: Any, make_client: MakeClient
) -> None:
    provider.handler = by_id(
        {
            "1": lambda: json_response({"data": {"a": 1}}),
            "2": lambda: json_response({"error": "boom"}, status=500),
            "3": lambda: json_response({"data": {"a": 3}}),
        }
    )
    client = make_client(retry=RetryPolicy(max_attempts=2, random=random.Random(SEED)))
    results = await fetch_details(client, resource(), [{"id": 1}, {"id": 2}, {"id": 3}], resource_key="products")
    assert [r.status for r in results] == ["ok", "failed", "ok"]
    failed = results[1]
    assert not failed.ok
    assert isinstance(failed.error, ProviderHTTPError)
    assert failed.error.status == 500
    assert str(failed.error).startswith(f"products details: GET {provider.url}/products/2?lang=en answered 500 after 2")
    assert failed.record == {"id": 2}


async def test_settle_keeps_its_value_of_each_merged_record_and_no_merged_record(
    provider: Any, make_client: MakeClient
) -> None:
    provider.handler = by_id(
        {
            "1": lambda: json_response({"data": {"id": 1, "price": 20}}),
            "2": lambda: json_response({"error": "boom"}, status=500),
            "3": lambda: json_response({"error": "not found"}, status=404),
        }
    )
    seen: list[dict[str, Any]] = []

    def settle(record: dict[str, Any]) -> tuple[Any, ...]:
        seen.append(record)
        return tuple(sorted(record.items()))

    client = make_client(retry=RetryPolicy(max_attempts=1, random=random.Random(SEED)))
    listed = [{"id": 1, "name": "Oud"}, {"id": 2}, {"id": 3, "name": "Musk"}]
    results = await fetch_details(client, resource(), listed, resource_key="products", settle=settle)
    assert [r.status for r in results] == ["ok", "failed", "not_found"]
    assert results[0].settled == (("id", 1), ("name", "Oud"), ("price", 20))  # merged, then settled
    assert results[0].record is SETTLED  # the merged record is not kept
    assert results[1].settled is None  # a failure is not settled
    assert results[1].record == {"id": 2}
    assert results[2].settled == (("id", 3), ("name", "Musk"))  # a 404 settles the list record
    assert sorted(r["id"] for r in seen) == [1, 3]
    assert listed == [SETTLED] * 3  # each list record left the page once it had a result
    assert SETTLED == {}


async def test_the_id_is_url_quoted_into_the_details_url(provider: Any, make_client: MakeClient) -> None:
    async def echo(request: web.Request) -> web.Response:
        return json_response({"data": {"seen": request.match_info["tail"]}})

    provider.handler = echo
    [result] = await fetch_details(
        make_client(),
        resource("/catalog/{id}/full", id_property="meta.sku"),
        [{"meta": {"sku": "a/b c?#1"}}],
        resource_key="products",
    )
    assert provider.requests[0].raw_path == "/catalog/a%2Fb%20c%3F%231/full?lang=en"
    assert result.record["seen"] == "catalog/a/b c?#1/full"


async def test_a_record_without_an_id_fails_alone(provider: Any, make_client: MakeClient) -> None:
    provider.handler = by_id({"1": lambda: json_response({"data": {}})})
    results = await fetch_details(make_client(), resource(), [{"name": "x"}, {"id": 1}], resource_key="products")
    assert [r.status for r in results] == ["failed", "ok"]
    assert isinstance(results[0].error, ResponseShapeError)
    assert "products record 0: idProperty 'id' is missing" in str(results[0].error)
    assert len(provider.requests) == 1


async def test_a_detail_that_is_not_an_object_fails_alone(provider: Any, make_client: MakeClient) -> None:
    provider.handler = by_id({"1": lambda: json_response([1, 2])})
    [result] = await fetch_details(make_client(), resource(), [{"id": 1}], resource_key="products")
    assert result.status == "failed"
    assert "products record 1: the details response is an array, expected an object" in str(result.error)


async def test_concurrent_details_come_back_in_input_order(provider: Any, make_client: MakeClient) -> None:
    first_may_finish = asyncio.Event()

    async def out_of_order(request: web.Request) -> web.Response:
        record_id = int(request.match_info["tail"].rsplit("/", 1)[-1])
        if record_id == 1:
            await asyncio.wait_for(first_may_finish.wait(), 5)  # the first record answers last of its wave
        if record_id == 5:
            first_may_finish.set()
        return json_response({"data": {"detail": record_id}})

    provider.handler = out_of_order
    records = [{"id": i} for i in range(1, 21)]
    results = await fetch_details(make_client(), resource(), records, concurrency=5, resource_key="products")
    assert [r.index for r in results] == list(range(20))
    assert [r.record for r in results] == [{"id": i, "detail": i} for i in range(1, 21)]
    assert 2 <= provider.max_in_flight <= 5


async def test_without_a_details_endpoint_the_records_come_back_unchanged(make_client: MakeClient) -> None:
    results = await fetch_details(make_client(), resource(None), [{"id": 1}], resource_key="products")
    assert [(r.status, r.record) for r in results] == [("ok", {"id": 1})]
