"""The lifecycle end to end over real HTTP: OAuth install against the sandbox, then a sync that refreshes."""

from __future__ import annotations

import asyncio
from typing import Any

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
    await runs_settled(stack, installation.id, len(enabled_resources(stack)))  # the initial import, first
    installation = installations.get(installation.id)
    first_token = installations.credentials(installation)["accessToken"]
    assert first_token.encode() not in installation.credentials  # encrypted at rest

    stack.sandbox.expire_access_token()
    report = await stack.runtime.engine.run(stack.app.definition, stack.app.plan, installation, resources=["products"])
    assert not report.failed, report.as_dict()
    products = report.resources["products"]
    assert (
        products.fetched == products.unchanged == len(stack.sandbox.data["products"])
    )  # the initial import wrote them
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


async def run_of(http: aiohttp.ClientSession, api: str, job_id: str) -> dict[str, Any]:
    """Follow a job id to its run, and the run to its end (the job runs in the server: poll, as a client would)."""
    auth = {"Authorization": f"Bearer {ADMIN}"}
    for _ in range(1000):
        status, job, _ = await fetch(http, "GET", f"{api}/jobs/{job_id}", headers=auth)
        assert status == 200
        assert job["jobId"] == job_id
        if job["run"] is not None and job["run"]["status"] != "running":
            run: dict[str, Any] = job["run"]
            return run
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish a run")


async def runs_settled(stack: Stack, installation_id: str, count: int) -> list[Any]:
    """Wait until the installation has ``count`` finished runs; return them."""
    for _ in range(1000):
        runs = stack.runtime.store.list_runs(installation_id)
        if len(runs) >= count and all(r.status != "running" for r in runs):
            return runs
        await asyncio.sleep(0.02)
    raise AssertionError(f"{count} runs did not finish: {stack.runtime.store.list_runs(installation_id)}")


def enabled_resources(stack: Stack) -> set[str]:
    sync = stack.app.definition.sync
    assert sync is not None
    return {key for key, resource in sync.resources.items() if resource.enabled}


async def test_an_oauth_install_through_serve_queues_the_initial_import_of_every_enabled_resource(
    stack: Stack,
) -> None:
    async with aiohttp.ClientSession() as http:
        assert (await connect(stack, http))[0] == 200
    installation = stack.runtime.installations.find("acme", "salla")
    runs = await runs_settled(stack, installation.id, len(enabled_resources(stack)))
    assert {r.resource for r in runs} == enabled_resources(stack)
    assert {r.status for r in runs} == {"succeeded"}
    assert all(r.job_id for r in runs)  # each ran as a job of the server's queue
    orders = stack.runtime.store.count_records(installation.id, "ecommerce:orders")
    assert orders == len(stack.sandbox.data["orders"])


async def test_an_api_key_install_through_the_api_queues_the_initial_import(stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {ADMIN}"}
    body = {"ns": "salla", "tenant": "globex", "credentials": {"accessToken": stack.sandbox.config.access_token}}
    async with aiohttp.ClientSession() as http:
        status, created, _ = await fetch(http, "POST", f"{stack.public_url}/api/installations", json=body, headers=auth)
        assert status == 201, created
        runs = await runs_settled(stack, created["id"], len(enabled_resources(stack)))  # queued by the install
        assert {(r.resource, r.status) for r in runs} == {(key, "succeeded") for key in enabled_resources(stack)}
        for each in runs:  # each ran as a job, and the job leads back to its run
            assert each.job_id is not None
            run = await run_of(http, f"{stack.public_url}/api", each.job_id)
            assert run["id"] == each.id
    assert stack.runtime.store.count_records(created["id"], "core:product") == len(stack.sandbox.data["products"])


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
        await runs_settled(stack, installation["id"], len(enabled_resources(stack)))  # the initial import
        url = f"{api}/installations/{installation['id']}/sync?resource=orders"
        status, started, _ = await fetch(http, "POST", url, headers=auth)
        assert status == 202
        (job,) = started["items"]  # one answer shape whatever the backend: jobs, whose ids lead to runs
        assert (job["resource"], job["duplicate"], job["runId"]) == ("orders", False, None)
        run = await run_of(http, api, job["jobId"])
        assert run["status"] == "succeeded", run
        assert run["jobId"] == job["jobId"]
        query = {"installation": installation["id"], "type": "ecommerce:orders"}
        _, records, _ = await fetch(http, "GET", f"{api}/records", params=query, headers=auth)
        assert len(records["items"]) == len(stack.sandbox.data["orders"])
        _, schema, _ = await fetch(http, "GET", f"{api}/openapi.json", headers=auth)
        assert "/api/installations" in schema["paths"]
