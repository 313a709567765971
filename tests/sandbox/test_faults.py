"""Injected faults: failures, HTML bodies, hangs, missing details, endless pages and latency."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.sandbox.server import REPEATED_PAGES

from .conftest import GetJson


async def statuses(http: aiohttp.ClientSession, url: str, count: int) -> list[int]:
    found = []
    for _ in range(count):
        async with http.get(url) as response:
            await response.read()
            found.append(response.status)
    return found


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_fail_next_answers_the_next_requests_with_the_status_then_recovers(
    sandbox: Sandbox, http: aiohttp.ClientSession, status: int
) -> None:
    sandbox.fail_next(2, status=status)
    async with http.get(sandbox.api_url + "/orders") as response:
        body = await response.json()
        assert "Retry-After" not in response.headers
    assert body["status"] == status
    assert body["success"] is False
    assert await statuses(http, sandbox.api_url + "/orders", 2) == [status, 200]
    assert sandbox.stats.responses[status] == 2
    assert sandbox.stats.rate_limited == 0  # injected, not the limiter's


async def test_clear_faults_ends_an_outage(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    sandbox.fail_next(100, status=503, path_prefix="/orders")
    sandbox.html_next(100, path_prefix="/products")
    assert await statuses(http, sandbox.api_url + "/orders", 2) == [503, 503]
    sandbox.clear_faults()
    assert await statuses(http, sandbox.api_url + "/orders", 1) == [200]
    async with http.get(sandbox.api_url + "/products") as response:
        assert response.content_type == "application/json"


async def test_fail_next_sends_the_given_body_and_retry_after(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    sandbox.fail_next(1, status=429, body="<html>slow down</html>", retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
    sandbox.fail_next(1, status=500, body='{"message": "boom"}')
    async with http.get(sandbox.api_url + "/orders") as response:
        assert (response.status, await response.text()) == (429, "<html>slow down</html>")
        assert response.content_type == "text/html"
        assert response.headers["Retry-After"] == "Wed, 21 Oct 2015 07:28:00 GMT"
    async with http.get(sandbox.api_url + "/orders") as response:
        assert (response.status, await response.json()) == (500, {"message": "boom"})


async def test_a_path_prefix_limits_a_fault_to_matching_requests(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    order_id = sandbox.data["orders"][0]["id"]
    sandbox.fail_next(1, status=502, path_prefix="/orders/")  # details only, relative to /admin/v2
    assert await statuses(http, sandbox.api_url + "/orders", 1) == [200]
    assert await statuses(http, sandbox.api_url + "/products", 1) == [200]
    assert await statuses(http, f"{sandbox.api_url}/orders/{order_id}", 2) == [502, 200]


async def test_oauth_routes_fail_only_when_a_prefix_names_them(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    cfg = sandbox.config
    fields = {"grant_type": "refresh_token", "refresh_token": cfg.refresh_token}
    fields |= {"client_id": cfg.client_id, "client_secret": cfg.client_secret}
    sandbox.fail_next(1, status=503)
    sandbox.fail_next(1, status=500, path_prefix="/oauth2/token")
    async with http.post(sandbox.base_url + "/oauth2/token", json=fields) as response:
        assert response.status == 500
    async with http.post(sandbox.base_url + "/oauth2/token", json=fields) as response:
        assert response.status == 200
    assert await statuses(http, sandbox.api_url + "/customers", 1) == [503]


async def test_faults_are_served_in_the_order_they_were_armed(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    sandbox.fail_next(1, status=500)
    sandbox.html_next(1)
    sandbox.fail_next(1, status=502)
    assert await statuses(http, sandbox.api_url + "/products", 4) == [500, 200, 502, 200]


async def test_html_next_answers_200_with_an_html_page(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    sandbox.html_next(1, path_prefix="/customers")
    async with http.get(sandbox.api_url + "/customers") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        assert (await response.text()).startswith("<!DOCTYPE html>")
    async with http.get(sandbox.api_url + "/customers") as response:
        assert response.content_type == "application/json"


async def test_hang_next_holds_a_request_past_the_client_timeout_and_stop_releases_it(
    http: aiohttp.ClientSession,
) -> None:
    async with Sandbox(SandboxConfig(products=3, customers=1, orders=1, carts=1)) as sandbox:
        sandbox.hang_next(1, seconds=60)
        with pytest.raises(asyncio.TimeoutError):
            await http.get(sandbox.api_url + "/products", timeout=aiohttp.ClientTimeout(total=0.05))
        assert await statuses(http, sandbox.api_url + "/products", 1) == [200]
        sandbox.hang_next(1, seconds=60)
        pending = asyncio.ensure_future(http.get(sandbox.api_url + "/products"))

        async def held() -> None:
            while sandbox.stats.by_route["GET /admin/v2/products"] < 3:
                await asyncio.sleep(0)

        await asyncio.wait_for(held(), timeout=5)
        await asyncio.wait_for(sandbox.stop(), timeout=5)
        (await pending).release()


async def test_missing_details_answer_404_while_the_list_still_shows_them(sandbox: Sandbox, get_json: GetJson) -> None:
    hidden, kept = sandbox.data["products"][1]["id"], sandbox.data["products"][2]["id"]
    sandbox.missing_details("products", [hidden])
    status, body = await get_json(f"{sandbox.api_url}/products/{hidden}")
    assert (status, body["error"]["code"]) == (404, "not_found")
    assert (await get_json(f"{sandbox.api_url}/products/{kept}"))[0] == 200
    _, page = await get_json(sandbox.api_url + "/products", params={"per_page": "60"})
    assert hidden in [r["id"] for r in page["data"]]


async def test_repeat_page_forever_serves_page_one_on_every_page(sandbox: Sandbox, get_json: GetJson) -> None:
    sandbox.repeat_page_forever("carts")
    _, first = await get_json(sandbox.api_url + "/carts/abandoned", params={"per_page": "4"})
    _, seventh = await get_json(sandbox.api_url + "/carts/abandoned", params={"per_page": "4", "page": "7"})
    assert [r["id"] for r in seventh["data"]] == [r["id"] for r in first["data"]]
    assert seventh["pagination"]["currentPage"] == 7
    assert seventh["pagination"]["totalPages"] == REPEATED_PAGES
    assert seventh["pagination"]["count"] == 4
    assert "page=8" in seventh["pagination"]["links"]["next"]


async def test_latency_delays_every_api_response(http: aiohttp.ClientSession) -> None:
    async with Sandbox(SandboxConfig(products=3, customers=1, orders=1, carts=1, latency=0.05)) as sandbox:
        started = time.monotonic()
        assert await statuses(http, sandbox.api_url + "/products", 2) == [200, 200]
        assert time.monotonic() - started >= 0.1


async def test_faults_can_be_armed_from_another_thread(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    await asyncio.to_thread(sandbox.fail_next, 1, status=504)
    await asyncio.to_thread(sandbox.expire_access_token)
    assert await statuses(http, sandbox.api_url + "/products", 2) == [504, 401]


def test_bad_fault_arguments_are_refused() -> None:
    sandbox = Sandbox(SandboxConfig(products=1, customers=1, orders=0, carts=0))
    with pytest.raises(ValueError, match="negative"):
        sandbox.fail_next(-1)
    with pytest.raises(ValueError, match="unknown sandbox resource 'invoices'"):
        sandbox.missing_details("invoices", [1])
