"""The lifecycle end to end over real HTTP: OAuth install against the sandbox, then a sync that refreshes."""

from __future__ import annotations

import asyncio

import aiohttp

from .conftest import ADMIN, Stack, authorize, connect, fetch


async def test_oauth_install_then_a_sync_that_hits_401_refreshes_and_completes(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        status, page = await connect(stack, http)
        assert status == 200
        assert "connected" in page

    installations = stack.runtime.installations
    installation = installations.find("acme", "salla")
    assert installation.status == "connected"
    assert str(installation.metadata["storeId"]) == str(stack.sandbox.config.merchant_id)
    first_token = installations.credentials(installation)["accessToken"]
    assert first_token.encode() not in installation.credentials  # encrypted at rest

    stack.sandbox.expire_access_token()
    report = await stack.runtime.engine.run(stack.app.definition, stack.app.plan, installation, resources=["products"])
    assert not report.failed, report.as_dict()
    products = report.resources["products"]
    assert products.created == len(stack.sandbox.data["products"])
    assert stack.runtime.store.count_records(installation.id, "core:product") == len(stack.sandbox.data["products"])
    refreshed = installations.credentials(installations.get(installation.id))
    assert refreshed["accessToken"] != first_token
    assert refreshed["refreshToken"] != stack.sandbox.config.refresh_token  # rotated and stored


async def test_a_state_is_single_use_and_a_forged_one_is_refused(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        oauth = f"{stack.public_url}/miniapps/salla/oauth2"
        _, _, callback = await fetch(http, "GET", await authorize(stack, http))
        assert (await fetch(http, "GET", callback))[0] == 200
        status, _, page = await fetch(http, "GET", callback)
        assert status == 400
        assert "already used" in page
        assert (await fetch(http, "GET", oauth, params={"code": "x", "state": "forged"}))[0] == 400


async def test_management_api_needs_the_admin_token_and_runs_a_sync(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        assert (await connect(stack, http))[0] == 200
        api = f"{stack.public_url}/api"
        assert (await fetch(http, "GET", f"{api}/installations"))[0] == 401
        auth = {"Authorization": f"Bearer {ADMIN}"}
        _, listed, _ = await fetch(http, "GET", f"{api}/installations", headers=auth)
        (installation,) = listed["items"]
        assert installation["status"] == "connected"
        assert "credentials" not in installation
        status, started, _ = await fetch(http, "POST", f"{api}/installations/{installation['id']}/sync", headers=auth)
        assert status == 202
        for _ in range(500):  # the run goes on in the server; poll its state
            _, run, _ = await fetch(http, "GET", f"{api}/runs/{started['runId']}", headers=auth)
            if run["status"] != "running":
                break
            await asyncio.sleep(0.02)
        assert run["status"] == "succeeded", run
        query = {"installation": installation["id"], "type": "ecommerce:orders"}
        _, records, _ = await fetch(http, "GET", f"{api}/records", params=query, headers=auth)
        assert len(records["items"]) == len(stack.sandbox.data["orders"])
        _, schema, _ = await fetch(http, "GET", f"{api}/openapi.json", headers=auth)
        assert "/api/installations" in schema["paths"]
