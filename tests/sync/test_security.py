"""Credentials at rest, single-flight refresh, OAuth state scope, and the private-network guard (D29-D31)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import stat
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from miniapp_sync.errors import InstallationError, SealError
from miniapp_sync.installations import Vault
from miniapp_sync.installations.oauth import StartLink
from miniapp_sync.network import Rewrites

from .conftest import World, derive


def test_credentials_are_unreadable_without_the_key(tmp_path: Path) -> None:
    vault = Vault.from_environment(None, {"MINIAPP_SYNC_SECRET_KEY": "one key"})
    blob = vault.encrypt({"accessToken": "tok-123456"})
    assert b"tok-123456" not in blob
    assert vault.decrypt(blob) == {"accessToken": "tok-123456"}
    other = Vault.from_environment(None, {"MINIAPP_SYNC_SECRET_KEY": "another key"})
    with pytest.raises(InstallationError, match="cannot decrypt stored credentials"):
        other.decrypt(blob)


def test_the_generated_key_file_is_private_and_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "store" / "secret.key"
    first = Vault.from_environment(key_file, {})
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    again = Vault.from_environment(key_file, {})
    assert again.decrypt(first.encrypt({"a": 1})) == {"a": 1}


def test_without_a_key_or_a_key_file_the_error_says_what_to_set() -> None:
    with pytest.raises(InstallationError, match="set MINIAPP_SYNC_SECRET_KEY"):
        Vault.from_environment(None, {})


async def test_concurrent_401s_refresh_once(world: World) -> None:
    app = derive()
    installation = await world.install(app)
    seen = world.runtime.installations.credentials(installation)["accessToken"]
    world.sandbox.expire_access_token()
    refresh = world.runtime.installations.refresh
    first, second = await asyncio.gather(
        refresh(app.definition, installation.id, seen_token=seen),
        refresh(app.definition, installation.id, seen_token=seen),
    )
    assert first["accessToken"] == second["accessToken"] != seen
    assert world.sandbox.stats.by_route["POST /oauth2/token"] == 1  # single-use refresh tokens survive


async def test_an_oauth_state_of_another_miniapp_is_refused(world: World) -> None:
    app = derive()
    world.runtime.add(app)
    world.runtime.store.put_oauth_state("state-1", tenant="acme", ns="zid", expires_at=world.clock.now() + 60)
    with pytest.raises(InstallationError, match="another MiniApp"):
        await world.runtime.installations.oauth.complete(app.definition, "state-1", "code")
    world.runtime.store.put_oauth_state("state-2", tenant="acme", ns="salla", expires_at=world.clock.now() + 60)
    world.clock.advance(61)
    with pytest.raises(InstallationError, match="expired or already used"):
        await world.runtime.installations.oauth.complete(app.definition, "state-2", "code")


def _tenant_base_url(document: dict[str, Any]) -> None:
    # WooCommerce-style: the store's own URL comes from the install form.
    document["sync"]["baseUrl"] = "{{storeUrl}}/admin/v2"


async def test_a_tenant_supplied_base_url_on_a_private_address_is_refused(world: World) -> None:
    app = derive(_tenant_base_url)
    world.runtime.add(app)
    installation = await world.runtime.installations.install(
        app.definition,
        "acme",
        credentials={"accessToken": world.sandbox.config.access_token},
        user_input={"storeUrl": world.sandbox.base_url},  # 127.0.0.1
    )
    report = await world.runtime.engine.run(app.definition, app.plan, installation, resources=["customers"])
    error = report.resources["customers"].error
    assert error is not None
    assert "private or local address" in error
    assert "--allow-private-network" in error

    installations = world.runtime.installations
    installations.egress = dataclasses.replace(installations.egress, allow_private_network=True)
    allowed = await world.runtime.engine.run(app.definition, app.plan, installation, resources=["customers"])
    assert allowed.status == "succeeded"


# --- issue #12 item 1: the tenant id is never a host part; install-form host values are labels (D31, D31a)


def _subdomain_hosts(document: dict[str, Any]) -> None:
    # A provider with one accounts host per shop: both the authorize and the token URL carry it.
    auth = document["auth"]
    auth["auth_url"]["url"] = "https://{{subdomain}}.accounts.salla.sa/oauth2/auth"
    auth["get_token"]["url"] = "https://{{subdomain}}.accounts.salla.sa/oauth2/token"


def _start_token(link: StartLink) -> str:
    return parse_qs(urlsplit(link.url).query)["start"][0]


async def test_oauth_start_link_never_puts_the_tenant_id_in_a_host(world: World) -> None:
    app = derive(_subdomain_hosts)
    world.runtime.add(app)
    installations = world.runtime.installations
    installations.configure("salla", {"client_id": world.sandbox.config.client_id})
    oauth = installations.oauth
    with pytest.raises(InstallationError, match="tenant id is never used in a URL's host"):
        oauth.issue_link(app.definition, "evil.example/?")
    for hostile in ("evil.example/?", "evil.example", "a@b", "x:1"):
        with pytest.raises(InstallationError, match="expected a host label"):
            oauth.issue_link(app.definition, "acme", user_input={"subdomain": hostile})
    assert world.sandbox.stats.by_route == {}  # nothing was sent anywhere

    # A valid shop label: the flow goes to the host the definition names, and only there.
    shop = "https://shop-1.accounts.salla.sa"
    installations.egress = dataclasses.replace(
        installations.egress,
        rewrites=Rewrites({**installations.egress.rewrites.origins, shop: world.sandbox.base_url}),
    )
    link = oauth.issue_link(app.definition, "acme", user_input={"subdomain": "shop-1"})
    authorize = oauth.start(app.definition, _start_token(link))
    assert authorize.startswith(world.sandbox.base_url + "/oauth2/auth?")
    async with aiohttp.ClientSession() as http, http.get(authorize, allow_redirects=False) as consent:
        callback = parse_qs(urlsplit(consent.headers["Location"]).query)
    installation = await oauth.complete(app.definition, callback["state"][0], callback["code"][0])
    assert installation.status == "connected"
    assert installation.user_input == {"subdomain": "shop-1"}
    assert world.sandbox.stats.by_route["POST /oauth2/token"] == 1


def _another_miniapp(document: dict[str, Any]) -> None:
    document["ns"] = "zid"
    for trigger in document["triggers"]:
        trigger["type"] = "miniapps:zid"


async def test_an_expired_or_foreign_start_link_is_refused(world: World) -> None:
    app = derive()
    world.runtime.add(app)
    installations = world.runtime.installations
    installations.configure("salla", {"client_id": world.sandbox.config.client_id})
    link = installations.oauth.issue_link(app.definition, "acme")
    assert link.expires_at == world.clock.now() + 600
    other = derive(_another_miniapp)
    with pytest.raises(InstallationError, match="this start link is for 'salla', not 'zid'"):
        installations.oauth.start(other.definition, _start_token(link))
    world.clock.advance(601)
    with pytest.raises(SealError, match="expired 1 s ago") as refused:
        installations.oauth.start(app.definition, _start_token(link))
    assert refused.value.reason == "expired"
    assert world.runtime.store.find_installation("acme", "salla") is None


async def test_an_oauth_state_is_bound_to_its_redirect_uri(world: World) -> None:
    app = derive()
    world.runtime.add(app)
    installations = world.runtime.installations
    installations.configure("salla", {"client_id": world.sandbox.config.client_id})
    authorize = installations.oauth.start(
        app.definition, _start_token(installations.oauth.issue_link(app.definition, "acme"))
    )
    state = parse_qs(urlsplit(authorize).query)["state"][0]
    installations.public_url = "https://another.example"  # a callback reaching another server's redirect_uri
    with pytest.raises(InstallationError, match="issued for redirect_uri"):
        await installations.oauth.complete(app.definition, state, "code")
    assert world.runtime.store.find_installation("acme", "salla") is None


# --- issue #12 item 3: the private-network guard on tenant values wherever they reach a URL (D31)


def _shop_host_base(document: dict[str, Any]) -> None:
    document["auth"]["sensitiveKeys"].append("shopHost")  # a per-tenant credential, pasted at install
    document["sync"]["baseUrl"] = "http://[[shopHost]]/admin/v2"


async def test_ssrf_guard_checks_a_tenant_credential_in_the_url_host(world: World) -> None:
    app = derive(_shop_host_base)
    world.runtime.add(app)
    shop_host = urlsplit(world.sandbox.base_url).netloc  # 127.0.0.1:<port>
    installation = await world.runtime.installations.install(
        app.definition,
        "acme",
        credentials={"accessToken": world.sandbox.config.access_token, "shopHost": shop_host},
    )
    report = await world.runtime.engine.run(app.definition, app.plan, installation, resources=["customers"])
    error = report.resources["customers"].error
    assert error is not None
    assert "private or local address" in error
    assert "--allow-private-network" in error
    assert not any(route.startswith("GET /admin/v2") for route in world.sandbox.stats.by_route)


def _shop_host_registration(document: dict[str, Any]) -> None:
    document["auth"]["sensitiveKeys"].append("shopHost")
    document["auth"]["registrationRequests"] = [
        {"url": "http://[[shopHost]]/admin/v2/webhooks/subscribe", "method": "POST", "body": {"event": "order.created"}}
    ]


async def test_ssrf_guard_checks_a_registration_request_built_from_a_credential(world: World) -> None:
    app = derive(_shop_host_registration)
    world.runtime.add(app)
    shop_host = urlsplit(world.sandbox.base_url).netloc
    with pytest.raises(InstallationError, match=r"auth\.registrationRequests\[0\]\.url: .* private or local"):
        await world.runtime.installations.install(
            app.definition,
            "acme",
            credentials={"accessToken": world.sandbox.config.access_token, "shopHost": shop_host},
        )
    assert "POST /admin/v2/webhooks/subscribe" not in world.sandbox.stats.by_route
    assert world.runtime.store.find_installation("acme", "salla").status == "error"  # type: ignore[union-attr]
