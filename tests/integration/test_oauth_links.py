"""OAuth installs need an operator's signed start link, and a callback never harms an installation (D31a).

Issue #12 items 1 and 2, over real HTTP: our server on a real port, the sandbox as the provider.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest

from miniapp_sync.cli import main

from .conftest import ADMIN, EXAMPLE, Stack, authorize, connect, fetch, start_link


def _token(stack: Stack, tenant: str = "acme") -> str:
    installations = stack.runtime.installations
    return str(installations.credentials(installations.find(tenant, "salla"))["accessToken"])


async def test_oauth_start_refuses_host_injection_via_tenant(stack: Stack) -> None:
    # The exact request of the report: before, it answered 302 Location: http://evil.example/?…
    async with aiohttp.ClientSession() as http:
        url = f"{stack.public_url}/miniapps/salla/oauth2?tenant=evil.example%2F%3F"
        async with http.get(url, allow_redirects=False) as response:
            page = await response.text()
            assert response.status == 403
            assert "Location" not in response.headers
    assert "link the operator issues" in page
    assert "miniapp-sync oauth-link" in page
    assert stack.runtime.store.find_installation("evil.example/?", "salla") is None
    assert stack.sandbox.stats.by_route.get("POST /oauth2/token", 0) == 0  # no client_secret sent anywhere


async def test_an_oauth_start_link_is_issued_only_with_the_admin_token(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        body = {"ns": "salla", "tenant": "acme"}
        status, _, _ = await fetch(http, "POST", f"{stack.public_url}/api/oauth-links", json=body)
        assert status == 401
        status, link = await start_link(stack, http)
    assert status == 201
    assert link["tenant"] == "acme"
    assert link["ns"] == "salla"
    assert link["reconnect"] is False
    assert link["expiresAt"].endswith("Z")
    assert link["url"].startswith(f"{stack.public_url}/miniapps/salla/oauth2?start=")


async def test_an_altered_start_link_is_refused_with_a_page_that_says_why(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        _, link = await start_link(stack, http)
        token = parse_qs(urlsplit(link["url"]).query)["start"][0]
        altered = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
        url = f"{stack.public_url}/miniapps/salla/oauth2?{urlencode({'start': altered})}"
        status, _, page = await fetch(http, "GET", url)
    assert status == 403
    assert "cannot be used" in page
    assert "altered" in page


async def test_a_forged_callback_never_changes_an_existing_installation(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        assert (await connect(stack, http))[0] == 200
        before = stack.runtime.installations.find("acme", "salla")
        token = _token(stack)
        # The old attack: anyone could start a flow for acme, then call back with a bogus code.
        status, _, _ = await fetch(http, "GET", f"{stack.public_url}/miniapps/salla/oauth2", params={"tenant": "acme"})
        assert status == 403
        # An install link cannot be had for a tenant that has the MiniApp: a reconnect is explicit.
        status, refused = await start_link(stack, http)
        assert status == 409
        assert refused["error"]["type"] == "installed"
        assert "reconnect" in refused["error"]["message"]
        # Even an operator's reconnect flow, called back with a bogus code, changes nothing.
        location = await authorize(stack, http, reconnect=True)
        state = parse_qs(urlsplit(location).query)["state"][0]
        callback = f"{stack.public_url}/miniapps/salla/oauth2"
        status, _, page = await fetch(http, "GET", callback, params={"code": "bogus", "state": state})
        assert status == 400
        assert "auth.get_token" in page
    after = stack.runtime.installations.find("acme", "salla")
    assert after.status == "connected"
    assert after.error is None
    assert after.updated_at == before.updated_at
    assert _token(stack) == token


async def test_a_callback_for_another_shop_never_replaces_a_tenants_tokens(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        assert (await connect(stack, http))[0] == 200
        store = stack.runtime.store
        installation = stack.runtime.installations.find("acme", "salla")
        # acme is connected to store 42; the sandbox's code is for its own merchant, another shop.
        store.update_installation(installation.id, metadata={**installation.metadata, "storeId": 42})
        token = _token(stack)
        status, page = await connect(stack, http, reconnect=True)
    assert status == 400
    assert "another provider account" in page
    assert "nothing was changed" in page
    after = stack.runtime.installations.find("acme", "salla")
    assert (after.status, after.metadata["storeId"]) == ("connected", 42)
    assert _token(stack) == token


async def test_a_reconnect_link_replaces_the_tokens_of_the_same_account(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        assert (await connect(stack, http))[0] == 200
        first = stack.runtime.installations.find("acme", "salla")
        # The store was renamed since: still the same account (webhooks find acme by storeId).
        stack.runtime.store.update_installation(first.id, metadata={**first.metadata, "storeName": "Old name"})
        token = _token(stack)
        status, _ = await connect(stack, http, reconnect=True)
    assert status == 200
    again = stack.runtime.installations.find("acme", "salla")
    assert again.id == first.id
    assert again.status == "connected"
    assert again.metadata["storeName"] == first.metadata["storeName"]
    assert _token(stack) != token  # the sandbox issues a new token per code exchange


async def test_a_reconnect_link_for_a_tenant_without_the_miniapp_is_refused(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        status, answer = await start_link(stack, http, "nobody", reconnect=True)
    assert status == 409
    assert answer["error"]["type"] == "link_refused"
    assert "no installation of 'salla' to reconnect" in answer["error"]["message"]


async def test_oauth_link_command_issues_a_link_the_server_accepts(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINIAPP_SYNC_SECRET_KEY", "a passphrase for tests")  # the server's key: no second secret
    store = stack.runtime.store.sqlite_path
    assert isinstance(store, Path)
    args = ["oauth-link", str(EXAMPLE), "--tenant", "acme", "--public-url", stack.public_url, "--store", str(store)]
    args += ["--config", f"client_id={stack.sandbox.config.client_id}"]
    assert main([*args, "--format", "json"]) == 0
    link = json.loads(capsys.readouterr().out)
    async with aiohttp.ClientSession() as http:
        status, _, location = await fetch(http, "GET", link["url"])
        assert status == 302
        assert location.startswith(stack.sandbox.base_url + "/oauth2/auth")
        status, _, callback = await fetch(http, "GET", location)
        assert (await fetch(http, "GET", callback))[0] == 200
    assert main([*args, "--format", "json"]) == 1  # acme has it now: only a reconnect link
    assert "--reconnect" in capsys.readouterr().err
    assert main([*args, "--reconnect"]) == 0
    assert "/miniapps/salla/oauth2?start=" in capsys.readouterr().out
    assert ADMIN not in link["url"]
