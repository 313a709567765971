"""Fixtures for the end-to-end tests: the sandbox provider, our server on a real port, the runtime behind it."""

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
    # With its lifespan: the embedded queue runs the server's jobs (syncs, drains) in this process.
    server = uvicorn.Server(uvicorn.Config(create_app(runtime, admin_token=ADMIN), log_level="warning", lifespan="on"))
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


async def start_link(
    stack: Stack, http: aiohttp.ClientSession, tenant: str = "acme", **body: Any
) -> tuple[int, dict[str, Any]]:
    """Ask the management API for a signed OAuth start link, as an operator (or the console) does."""
    status, answer, _ = await fetch(
        http,
        "POST",
        f"{stack.public_url}/api/oauth-links",
        json={"ns": "salla", "tenant": tenant, **body},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    return status, answer


async def authorize(stack: Stack, http: aiohttp.ClientSession, tenant: str = "acme", **body: Any) -> str:
    """Open a fresh start link like the tenant's browser; return the provider's authorize URL it leads to."""
    status, link = await start_link(stack, http, tenant, **body)
    assert status == 201, link
    status, _, location = await fetch(http, "GET", link["url"])
    assert status == 302
    return location


async def connect(stack: Stack, http: aiohttp.ClientSession, tenant: str = "acme", **body: Any) -> tuple[int, str]:
    """Walk the browser's OAuth round trip from a signed start link; return our callback's status and page."""
    location = await authorize(stack, http, tenant, **body)
    assert location.startswith(stack.sandbox.base_url + "/oauth2/auth")
    assert parse_qs(urlsplit(location).query)["redirect_uri"] == [f"{stack.public_url}/miniapps/salla/oauth2"]
    status, _, callback = await fetch(http, "GET", location)
    assert status == 302
    status, _, page = await fetch(http, "GET", callback)
    return status, page
