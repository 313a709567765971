"""The request policy (D31): which addresses are private, and what a tenant value may put in a URL's host."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from miniapp_sync.errors import InstallationError
from miniapp_sync.network import Egress, Rewrites, is_private, refused, render_url
from miniapp_sync.templating import Context

PRIVATE = [
    "127.0.0.1",  # loopback
    "10.1.2.3",  # private
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # link-local: cloud metadata
    "100.64.0.1",  # CGNAT
    "0.0.0.0",  # unspecified
    "224.0.0.1",  # multicast
    "::1",
    "::",
    "fd00::1",  # ULA
    "fe80::1%eth0",  # link-local with a zone
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:8.8.8.8",  # IPv4-mapped, even of a public address: no real host answers on one
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
]


@pytest.mark.parametrize("address", PRIVATE)
def test_private_and_special_addresses_are_refused(address: str) -> None:
    assert is_private(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700::1111", "64:ff9b::808:808"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert not is_private(address)


CONTEXT = Context(
    credentials={"shopHost": "shop.example.com:8443"},
    user_input={"subdomain": "shop-1", "storeUrl": "https://shop.example.com/store"},
    system={"subdomain": "acme", "tenant": "acme"},
)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("https://{{subdomain}}.myshopify.com/admin", "https://shop-1.myshopify.com/admin"),
        ("https://[[shopHost]]/wp-json", "https://shop.example.com:8443/wp-json"),
        ("{{storeUrl}}/wp-json/wc/v3", "https://shop.example.com/store/wp-json/wc/v3"),
    ],
)
def test_tenant_values_in_a_host_are_validated_and_the_url_is_tenant_built(template: str, expected: str) -> None:
    assert render_url(template, CONTEXT, "sync.baseUrl") == (expected, True)


def test_placeholders_after_the_host_do_not_make_a_url_tenant_built() -> None:
    # The path may carry the tenant id; only the host part is guarded.
    url = "https://api.example.com/tenants/{{subdomain}}?q={{subdomain}}"
    assert render_url(url, CONTEXT, "x") == ("https://api.example.com/tenants/shop-1?q=shop-1", False)


@pytest.mark.parametrize(
    ("template", "values", "message"),
    [
        ("https://{{subdomain}}.shop.com/", {"subdomain": "evil.example/?"}, "expected a host label"),
        ("https://{{subdomain}}.shop.com/", {"subdomain": "evil.example#"}, "expected a host label"),
        ("https://{{subdomain}}.shop.com/", {"subdomain": "a@b"}, "expected a host label"),
        ("https://{{host}}/api", {"host": "good.com@evil.com"}, "expected a host name"),
        ("https://{{host}}/api", {"host": "evil.com/x?"}, "expected a host name"),
        ("{{storeUrl}}/api", {"storeUrl": "ftp://shop.com"}, "is the URL.s origin"),
        ("{{storeUrl}}/api", {"storeUrl": "https://good.com\\@evil.com"}, "is the URL.s origin"),
        ("{{storeUrl}}/api", {"storeUrl": "https://user:pw@shop.com"}, "is the URL.s origin"),
    ],
)
def test_a_hostile_host_value_is_refused_naming_the_placeholder(
    template: str, values: dict[str, str], message: str
) -> None:
    with pytest.raises(InstallationError, match=message):
        render_url(template, Context(user_input=values), "auth.auth_url.url")


def test_the_tenant_id_never_resolves_in_a_host() -> None:
    tenant_only = Context(system={"subdomain": "evil.example", "tenant": "evil.example"})
    with pytest.raises(InstallationError, match="tenant id is never used in a URL's host"):
        render_url("https://{{subdomain}}.shop.com/oauth", tenant_only, "auth.auth_url.url")


def test_a_rewritten_url_is_trusted_like_the_definitions_own() -> None:
    egress = Egress(Rewrites({"https://shop-1.myshopify.com": "http://127.0.0.1:9"}))
    target = egress.target("https://{{subdomain}}.myshopify.com/admin", CONTEXT, "sync.baseUrl")
    assert target.url == "http://127.0.0.1:9/admin"
    assert not egress.guards(target)


async def test_the_guarded_session_refuses_a_loopback_literal_at_connection_time() -> None:
    hits: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="internal")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        async with Egress().session() as session:
            with pytest.raises(aiohttp.ClientConnectorError) as caught:
                await session.get(f"http://127.0.0.1:{port}/admin")
        assert refused(caught.value)
        assert hits == []
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    "pair",
    [
        "garbage",
        "https://api.salla.dev=",
        "https://api.salla.dev=ftp://127.0.0.1",
        "https://api.salla.dev=http://[::1",  # unclosed IPv6 bracket: was an internal ValueError
        "https://api.salla.dev=http://127.0.0.1:99999",  # port out of range: failed every later sync
        "https://api.salla.dev=http://127.0.0.1:port",
        "https://api.salla.dev=http://:8080",  # a port without a host
    ],
)
def test_a_rewrite_that_is_not_two_usable_origins_is_refused_up_front(pair: str) -> None:
    with pytest.raises(InstallationError, match=r"a rewrite is FROM=TO with two http\(s\) origins, found "):
        Rewrites.parse([pair])


def test_a_rewrite_to_an_ipv6_origin_with_a_port_is_accepted() -> None:
    rewrites = Rewrites.parse(["https://api.salla.dev=http://[::1]:8765/"])
    assert rewrites.apply("https://api.salla.dev/admin/v2/orders") == "http://[::1]:8765/admin/v2/orders"
