"""The lifecycle end to end over real HTTP: OAuth install against the sandbox, then a sync that refreshes."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import uvicorn

from miniapp_sync.network import Rewrites
from miniapp_sync.runtime import MiniApp, Runtime, load_miniapp
from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.server import create_app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "salla" / "definition.json5"
ADMIN = "admin-token-for-tests"


class Stack:
    """The sandbox provider, our server on a real port, and the runtime behind it."""

    def __init__(self, sandbox: Sandbox, runtime: Runtime, app: MiniApp, public_url: str) -> None:
        self.sandbox = sandbox
        self.runtime = runtime
        self.app = app
        self.public_url = public_url


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    sandbox = Sandbox(SandboxConfig(products=25, customers=8, orders=10, carts=3))
    base = await sandbox.start()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    public_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    runtime = Runtime.open(
        str(tmp_path / "store.sqlite"),
        rewrites=Rewrites({"https://accounts.salla.sa": base, "https://api.salla.dev": base}),
        public_url=public_url,
        environ={"MINIAPP_SYNC_SECRET_KEY": "a passphrase for tests"},
    )
    app = runtime.add(load_miniapp(EXAMPLE))
    runtime.installations.configure(
        "salla", {"client_id": sandbox.config.client_id, "client_secret": sandbox.config.client_secret}
    )
    server = uvicorn.Server(uvicorn.Config(create_app(runtime, admin_token=ADMIN), log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield Stack(sandbox, runtime, app, public_url)
    finally:
        server.should_exit = True
        await task
        runtime.close()
        await sandbox.stop()


async def fetch(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> tuple[int, Any, str]:
    """Send a request and read it whole (status, JSON or None, text), releasing the connection."""
    async with http.request(method, url, allow_redirects=False, **kwargs) as response:
        text = await response.text()
        data = json.loads(text) if response.content_type.endswith("json") else None
        return response.status, data, response.headers.get("Location", text)


async def connect(stack: Stack, http: aiohttp.ClientSession, tenant: str = "acme") -> tuple[int, str]:
    """Walk the browser's OAuth round trip; return our callback's status and page."""
    status, _, authorize = await fetch(
        http, "GET", f"{stack.public_url}/miniapps/salla/oauth2", params={"tenant": tenant}
    )
    assert status == 302
    assert authorize.startswith(stack.sandbox.base_url + "/oauth2/auth")
    assert parse_qs(urlsplit(authorize).query)["redirect_uri"] == [f"{stack.public_url}/miniapps/salla/oauth2"]
    status, _, callback = await fetch(http, "GET", authorize)
    assert status == 302
    status, _, page = await fetch(http, "GET", callback)
    return status, page


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
        _, _, authorize = await fetch(http, "GET", oauth, params={"tenant": "acme"})
        _, _, callback = await fetch(http, "GET", authorize)
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
