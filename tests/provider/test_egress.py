"""The private-network guard holds where the connection is made (issue #12 item 3, D31).

Two real servers on loopback: a "store" on 127.0.0.2, which these tests' address policy counts as
public (a test cannot reach a real public address), and an internal service on 127.0.0.1 that a
tenant must never reach. The store redirects there, links its next page there, or its name is
rebound there between the check and the connection: the internal service receives nothing.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from miniapp_sync.definition.model import Resource
from miniapp_sync.errors import ProviderError
from miniapp_sync.network import Egress, is_private
from miniapp_sync.provider import ProviderClient
from miniapp_sync.provider.pagination import pages

from .conftest import FakeProvider, json_response

STORE = "127.0.0.2"


def public_in_tests(address: str) -> bool:
    """The policy under test, except that the test store's loopback address counts as public."""
    return address != STORE and is_private(address)


async def _serve(fake: FakeProvider, host: str, port: int = 0) -> web.AppRunner:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.dispatch)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound_host, bound_port = runner.addresses[0][:2]
    fake.url = f"http://{bound_host}:{bound_port}"
    return runner


@pytest.fixture
async def store() -> AsyncIterator[FakeProvider]:
    fake = FakeProvider()
    runner = await _serve(fake, STORE)
    yield fake
    fake.release.set()
    await runner.cleanup()


def _next_style() -> Resource:
    return Resource.model_validate(
        {
            "contentType": "core:product",
            "endpoints": {"list": {"url": "/products"}},
            "pagination": {"style": "next", "nextProperty": "pagination.next", "defaultLimit": 1},
            "responseMapping": {"dataProperty": "data"},
            "apiMapping": {"code": "id"},
        }
    )


async def test_a_redirect_from_a_public_store_to_a_private_address_is_not_followed(
    store: FakeProvider, provider: FakeProvider, make_client: Callable[..., ProviderClient]
) -> None:
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{provider.url}/admin/secrets")

    store.handler = redirect
    provider.handler = lambda request: _answer({"secret": "internal"})
    client = make_client(base_url=store.url, egress=Egress(private=public_in_tests))  # a tenant-built base
    with pytest.raises(ProviderError, match="refused: the address is private or local") as refused:
        await client.get_json("/products", resource="products")
    assert "--allow-private-network" in str(refused.value)
    assert len(store.requests) == 1
    assert provider.requests == []
    assert client.retries == 0  # the guard's answer does not change on a retry

    allowed = make_client(base_url=store.url, egress=Egress(allow_private_network=True))
    assert (await allowed.get_json("/products")).data == {"secret": "internal"}  # the guard was what stopped it


async def test_a_pagination_next_link_to_a_private_address_is_not_followed(
    store: FakeProvider, provider: FakeProvider, make_client: Callable[..., ProviderClient]
) -> None:
    async def first_page(request: web.Request) -> web.Response:
        return json_response({"data": [{"id": 1}], "pagination": {"next": f"{provider.url}/products?after=1"}})

    store.handler = first_page
    provider.handler = lambda request: _answer({"data": [{"id": 2}], "pagination": {}})
    # Even with the store's own origin trusted (a URL the definition names), the link leaves it.
    client = make_client(base_url=store.url, egress=Egress(private=public_in_tests), trusted=[store.url])
    walk = pages(client, _next_style(), resource_key="products")
    assert (await anext(walk)).records == [{"id": 1}]
    with pytest.raises(ProviderError, match="refused: the address is private or local"):
        await anext(walk)
    assert provider.requests == []


class Rebinding(AbstractResolver):
    """A DNS server under an attacker's control: a public address first, loopback ever after."""

    def __init__(self, first: str, then: str) -> None:
        self.answers = [first]
        self.then = then
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        address = self.answers.pop(0) if self.answers else self.then
        return [
            ResolveResult(
                hostname=host, host=address, port=port, family=socket.AF_INET, proto=0, flags=socket.AI_NUMERICHOST
            )
        ]

    async def close(self) -> None:
        return None


async def test_dns_rebinding_between_the_check_and_the_connection_is_refused(
    store: FakeProvider, make_client: Callable[..., ProviderClient]
) -> None:
    internal = FakeProvider()
    port = int(store.url.rsplit(":", 1)[1])
    runner = await _serve(internal, "127.0.0.1", port)  # the same port, on the address the name is rebound to
    try:
        internal.handler = lambda request: _answer({"secret": "internal"})
        resolver = Rebinding(first=STORE, then="127.0.0.1")
        egress = Egress(resolver=resolver, private=public_in_tests)
        url = f"http://shop.example:{port}"
        await egress.check(url, what="sync.baseUrl")  # the name looks public when checked…
        client = make_client(base_url=url, egress=egress)
        with pytest.raises(ProviderError, match="refused: the address is private or local"):
            await client.get_json("/products", resource="products")  # …and is loopback when connected
        assert resolver.asked == ["shop.example", "shop.example"]
        assert internal.requests == []
        assert store.requests == []
    finally:
        internal.release.set()
        await runner.cleanup()


async def _answer(body: Any) -> web.Response:
    return json_response(body)
