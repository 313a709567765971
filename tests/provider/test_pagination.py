"""Paginators: every style and stop rule, resume from a checkpoint, loops and bad shapes (D7, D8, D10)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncGenerator, Callable
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miniapp_sync.definition.model import Resource
from miniapp_sync.errors import ProviderError
from miniapp_sync.provider import Page, PaginationLoopError, ProviderClient, ResponseShapeError, pages
from miniapp_sync.provider.errors import ProviderHTTPError

from .conftest import Catalog, json_response

MakeClient = Callable[..., ProviderClient]


def catalog(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"product {i}"} for i in range(1, n + 1)]


def resource(
    style: str = "page",
    *,
    limit: int = 3,
    data: str = "data",
    total: str | None = None,
    total_pages: str | None = None,
    next_property: str | None = None,
    url: str = "/products",
    query: dict[str, Any] | None = None,
) -> Resource:
    pagination: dict[str, Any] = {"style": style, "defaultLimit": limit}
    if next_property:
        pagination["nextProperty"] = next_property
    mapping: dict[str, Any] = {"dataProperty": data}
    if total:
        mapping["totalProperty"] = total
    if total_pages:
        mapping["totalPagesProperty"] = total_pages
    return Resource.model_validate(
        {
            "contentType": "core:product",
            "endpoints": {"list": {"url": url, "queryParams": query or {}}},
            "pagination": pagination,
            "responseMapping": mapping,
            "apiMapping": {"code": "id"},
        }
    )


STYLES: dict[str, dict[str, Any]] = {
    "page": {},
    "offset": {},
    "cursor": {"next_property": "pagination.next_cursor"},
    "next": {"next_property": "pagination.next"},
    "link": {"next_property": "header:Link"},
}


def styled(style: str, **options: Any) -> Resource:
    return resource("next" if style == "link" else style, **{**STYLES[style], **options})


def serve(provider: Any, records: list[dict[str, Any]], style: str, **options: Any) -> Catalog:
    provider.catalog = Catalog(
        records, style="next" if style == "link" else style, link_header=style == "link", **options
    )
    provider.requests.clear()
    return provider.catalog


async def collect(client: ProviderClient, res: Resource, **options: Any) -> list[Page]:
    return [page async for page in pages(client, res, resource_key="products", **options)]


def ids(result: list[Page]) -> list[int]:
    return [record["id"] for page in result for record in page.records]


async def test_page_style_sends_page_and_size_and_checkpoints_each_page(provider: Any, make_client: MakeClient) -> None:
    serve(provider, catalog(7), "page")
    result = await collect(make_client(), resource(query={"status": "active"}), params={"sort": "id"})
    assert [p.number for p in result] == [1, 2, 3]
    assert [p.state for p in result] == [{"page": 2, "seen": 3}, {"page": 3, "seen": 6}, {"done": True}]
    assert ids(result) == list(range(1, 8))
    assert provider.requests[1].query == {"status": "active", "sort": "id", "per_page": "3", "page": "2"}


async def test_a_short_page_ends_the_walk_without_a_total(provider: Any, make_client: MakeClient) -> None:
    serve(provider, catalog(7), "page", total=None)
    result = await collect(make_client(), resource())
    assert len(provider.requests) == 3
    assert result[-1].done
    assert len(result[-1].records) == 1


async def test_an_empty_page_ends_the_walk(provider: Any, make_client: MakeClient) -> None:
    serve(provider, catalog(6), "page", total=None)
    result = await collect(make_client(), resource())
    assert [len(p.records) for p in result] == [3, 3, 0]
    assert result[-1].state == {"done": True}


async def test_an_empty_catalog_yields_one_final_empty_page(provider: Any, make_client: MakeClient) -> None:
    serve(provider, [], "page")
    result = await collect(make_client(), resource(total="pagination.total"))
    assert [(p.records, p.total, p.state) for p in result] == [([], 0, {"done": True})]


async def test_the_total_ends_the_walk_without_an_extra_request(provider: Any, make_client: MakeClient) -> None:
    serve(provider, catalog(6), "page")
    result = await collect(make_client(), resource(total="pagination.total"))
    assert len(provider.requests) == 2
    assert [p.total for p in result] == [6, 6]
    assert result[-1].done


async def test_total_pages_end_the_walk(provider: Any, make_client: MakeClient) -> None:
    serve(provider, catalog(6), "page", total=None, total_pages=True)
    result = await collect(make_client(), resource(total_pages="pagination.totalPages"))
    assert len(provider.requests) == 2
    assert ids(result) == list(range(1, 7))


async def test_a_silent_size_cap_loses_nothing_when_the_total_is_known(provider: Any, make_client: MakeClient) -> None:
    serve(provider, catalog(10), "page", max_size=4)  # asked for 6, served 4 (Salla caps at 60)
    result = await collect(make_client(), resource(limit=6, total="pagination.total"))
    assert ids(result) == list(range(1, 11))


async def test_offset_style_advances_by_records_received(provider: Any, make_client: MakeClient) -> None:
    serve(provider, catalog(7), "offset", total=None)
    result = await collect(make_client(), resource("offset"))
    assert [r.query["offset"] for r in provider.requests] == ["0", "3", "6"]
    assert [p.state for p in result] == [{"offset": 3, "page": 2}, {"offset": 6, "page": 3}, {"done": True}]


async def test_cursor_style_sends_back_the_cursor_from_the_body(provider: Any, make_client: MakeClient) -> None:
    serve(provider, catalog(7), "cursor", total=None)
    result = await collect(make_client(), styled("cursor"))
    assert ids(result) == list(range(1, 8))
    assert [r.query.get("cursor") for r in provider.requests] == [None, "c3", "c6"]
    assert result[0].state == {"cursor": "c3", "page": 2, "seen": 3}


async def test_next_style_follows_the_body_url_verbatim(provider: Any, make_client: MakeClient) -> None:
    serve(provider, catalog(5), "next", total=None)
    result = await collect(make_client(), styled("next"), params={"status": "any"})
    assert ids(result) == list(range(1, 6))
    assert result[0].state["next"] == f"{provider.url}/products?after=3&per_page=3"
    assert dict(provider.requests[1].query) == {"after": "3", "per_page": "3"}


@pytest.mark.parametrize("relative", [False, True])
async def test_next_style_follows_the_link_header(provider: Any, make_client: MakeClient, relative: bool) -> None:
    serve(provider, catalog(8), "link", envelope=False, total="header", relative_links=relative)
    result = await collect(make_client(), styled("link", data="$"))
    assert ids(result) == list(range(1, 9))
    assert result[1].state["next"] == f"{provider.url}/products?after=6&per_page=3"


@pytest.mark.parametrize("data", ["$", ""])
async def test_a_bare_array_with_the_total_in_x_wp_total(provider: Any, make_client: MakeClient, data: str) -> None:
    serve(provider, catalog(6), "page", envelope=False, total="header")
    result = await collect(make_client(), resource(data=data, total="header:X-WP-Total"))
    assert [p.total for p in result] == [6, 6]
    assert len(provider.requests) == 2


@pytest.mark.parametrize("style", list(STYLES))
async def test_resuming_from_any_checkpoint_yields_exactly_the_rest(
    provider: Any, make_client: MakeClient, style: str
) -> None:
    serve(provider, catalog(11), style, total=None)
    client = make_client()
    res = styled(style)
    full = await collect(client, res)
    for index, page in enumerate(full[:-1]):
        rest = await collect(client, res, start=page.state)
        assert ids(rest) == ids(full[index + 1 :])
        assert [p.number for p in rest] == [p.number for p in full[index + 1 :]]
    assert await collect(client, res, start={"done": True}) == []


async def test_a_provider_ignoring_the_page_parameter_is_a_loop(provider: Any, make_client: MakeClient) -> None:
    serve(provider, catalog(9), "page", total=None, ignore_paging=True)
    with pytest.raises(PaginationLoopError, match=r"products page 2: the provider returned the same 3 records"):
        await collect(make_client(), resource())


async def test_a_repeated_cursor_is_a_loop(provider: Any, make_client: MakeClient) -> None:
    async def stuck(request: web.Request) -> web.Response:
        return json_response({"data": [{"id": request.query.get("cursor", "0")}], "meta": {"next": "abc"}})

    provider.handler = stuck
    with pytest.raises(PaginationLoopError, match=r'products page 2: the provider returned cursor "abc" again'):
        await collect(make_client(), resource("cursor", next_property="meta.next"))


async def test_a_repeated_next_url_is_a_loop_and_stays_redacted(provider: Any, make_client: MakeClient) -> None:
    async def stuck(request: web.Request) -> web.Response:
        page = int(request.query.get("p", "1"))
        link = f"{provider.url}/products?p={min(page + 1, 2)}&access_token=secret-1"
        return json_response({"data": [{"id": page}]}, headers={"Link": f'<{link}>; rel="next"'})

    provider.handler = stuck
    with pytest.raises(PaginationLoopError) as caught:
        await collect(make_client(), resource("next", next_property="header:Link"))
    assert str(caught.value) == (
        f"products page 2: the provider returned next URL {provider.url}/products?p=2&access_token=*** again; "
        "stopping instead of looping"
    )


@pytest.mark.parametrize(
    ("body", "options", "message"),
    [
        (
            {"status": 200, "items": []},
            {},
            "products page 1: responseMapping.dataProperty 'data' is missing in the response; "
            "found keys: status, items",
        ),
        (
            {"data": {"id": 1}},
            {},
            "products page 1: responseMapping.dataProperty 'data' is an object, expected an array",
        ),
        ([{"id": 1}], {}, "hint: set responseMapping.dataProperty to '$'"),
        ({"data": [1]}, {}, "products page 1: record 0 is a number 1, expected an object"),
        ({"data": []}, {"data": "$"}, "products page 1: the response is an object, expected an array"),
        (
            {"data": [], "meta": {"total": "many"}},
            {"total": "meta.total"},
            "products page 1: responseMapping.totalProperty 'meta.total' is a string \"many\", expected a number",
        ),
    ],
)
async def test_malformed_responses_name_the_resource_page_and_shape(
    provider: Any, make_client: MakeClient, body: Any, options: dict[str, Any], message: str
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return json_response(body)

    provider.handler = answer
    with pytest.raises(ResponseShapeError) as caught:
        await collect(make_client(), resource(**options))
    assert message in str(caught.value)
    assert (caught.value.resource, caught.value.page) == ("products", 1)


async def test_a_null_data_property_is_an_empty_page(provider: Any, make_client: MakeClient) -> None:
    async def answer(request: web.Request) -> web.Response:
        return json_response({"data": None})

    provider.handler = answer
    assert [p.records for p in await collect(make_client(), resource())] == [[]]


async def test_known_totals_fetch_pages_concurrently_and_yield_them_in_order(
    provider: Any, make_client: MakeClient
) -> None:
    serve(provider, catalog(40), "page")
    gate = asyncio.Event()

    async def overlapping(request: web.Request) -> web.Response:
        if request.query["page"] != "1" and provider.in_flight >= 3:
            gate.set()
        if request.query["page"] in {"2", "3"}:
            await asyncio.wait_for(gate.wait(), 5)  # hold early pages until later ones are in flight
        assert provider.catalog is not None
        return provider.catalog.serve(request, provider.url)

    provider.handler = overlapping
    result = await collect(make_client(), resource(limit=4, total="pagination.total"), concurrency=4)
    assert [p.number for p in result] == list(range(1, 11))
    assert ids(result) == list(range(1, 41))
    assert 3 <= provider.max_in_flight <= 4
    assert len(provider.requests) == 10


async def test_concurrent_pages_past_a_stale_total_are_dropped_quietly(provider: Any, make_client: MakeClient) -> None:
    records = catalog(9)

    async def shrinking(request: web.Request) -> web.Response:
        page, size = int(request.query["page"]), int(request.query["per_page"])
        if page > 4:
            return json_response({"error": "gone"}, status=500)  # must not matter: page 4 ends the walk
        return json_response({"data": records[(page - 1) * size : page * size], "total": 30})

    provider.handler = shrinking
    result = await collect(make_client(), resource(limit=3, total="total"), concurrency=6)
    assert ids(result) == list(range(1, 10))


async def test_stopping_early_cancels_pages_in_flight(provider: Any, make_client: MakeClient) -> None:
    serve(provider, catalog(30), "page")
    walker = pages(make_client(), resource(total="pagination.total"), concurrency=5, resource_key="products")
    async with contextlib.aclosing(walker):
        first = await anext(walker)
    assert first.number == 1


async def test_a_walk_left_open_with_pages_in_flight_closes_cleanly_however_it_is_closed(
    provider: Any, make_client: MakeClient
) -> None:
    records = catalog(30)

    async def slow_after_two(request: web.Request) -> web.Response:
        page, size = int(request.query["page"]), int(request.query["per_page"])
        if page > 2:
            await provider.release.wait()  # still in flight when the walk is closed
        return json_response({"data": records[(page - 1) * size : page * size], "pagination": {"total": 30}})

    provider.handler = slow_after_two
    # Every async generator the walk starts, through the loop's own hooks (which still track it).
    started: list[AsyncGenerator[Any, Any]] = []
    firstiter, finalizer = sys.get_asyncgen_hooks()
    assert firstiter is not None
    sys.set_asyncgen_hooks(lambda generator: (started.append(generator), firstiter(generator)), finalizer)
    try:
        walker = pages(make_client(), resource(total="pagination.total"), concurrency=4, resource_key="products")
        assert [(await anext(walker)).number, (await anext(walker)).number] == [1, 2]
    finally:
        sys.set_asyncgen_hooks(firstiter, finalizer)

    async def fetched_ahead() -> None:
        while provider.in_flight < 3:  # pages 3 to 5
            await asyncio.sleep(0.001)

    await asyncio.wait_for(fetched_ahead(), 5)
    # Left open (as a cancelled run once left it), the walk is closed by the collector's finalizer or the
    # loop's shutdown, which closes every open generator at once: none may be closed while closing.
    await asyncio.gather(*(generator.aclose() for generator in started))
    assert walker.ag_frame is None
    assert not [t for t in asyncio.all_tasks() if "fetch_ahead" in t.get_coro().__qualname__]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(0, 300),
    k=st.integers(1, 50),
    style=st.sampled_from([*STYLES, "page+total", "page+concurrent"]),
)
async def test_every_record_arrives_exactly_once_in_order(
    provider: Any, make_client: MakeClient, n: int, k: int, style: str
) -> None:
    records = catalog(n)
    options: dict[str, Any] = {"limit": k}
    concurrency = 1
    if style == "page+total":
        serve(provider, records, "page")
        options["total"] = "pagination.total"
    elif style == "page+concurrent":
        serve(provider, records, "page")
        options["total"] = "pagination.total"
        concurrency = 3
    else:
        serve(provider, records, style, total=None)
    res = resource(**options) if style.startswith("page+") else styled(style, **options)
    result = await collect(make_client(), res, concurrency=concurrency)
    assert ids(result) == list(range(1, n + 1))
    assert result[-1].done
    assert not any(p.done for p in result[:-1])


async def test_next_style_defaults_to_the_link_header(provider: Any, make_client: MakeClient) -> None:
    serve(provider, catalog(5), "link", total=None)
    result = await collect(make_client(), resource("next"))
    assert ids(result) == list(range(1, 6))


async def test_cursor_style_without_a_next_property_is_refused(make_client: MakeClient) -> None:
    with pytest.raises(ProviderError, match=r"products: pagination.style 'cursor' needs pagination.nextProperty"):
        await collect(make_client(), resource("cursor"))


@pytest.mark.parametrize("style", sorted(STYLES))
async def test_a_failed_list_request_names_its_page_in_every_style(
    provider: Any, make_client: MakeClient, style: str
) -> None:
    listing = serve(provider, catalog(12), style)

    async def answer(request: web.Request) -> web.Response:
        if len(provider.requests) >= 3:  # the third page is gone
            return json_response({"error": "gone"}, status=404)
        return listing.serve(request, provider.url)

    provider.handler = answer
    with pytest.raises(ProviderHTTPError) as caught:
        await collect(make_client(), styled(style))
    assert (caught.value.resource, caught.value.page, caught.value.status) == ("products", 3, 404)  # run forensics
