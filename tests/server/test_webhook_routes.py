"""The server's webhook-related routes: /metrics, the lifespan's workers, and the admin guard around /api."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import uvicorn
from aiohttp import web

from miniapp_sync.runtime import Runtime, load_miniapp
from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.server import create_app
from miniapp_sync.store import Outbox
from miniapp_sync.testing import FakeClock, post_endpoint
from miniapp_sync.webhooks.delivery import seal

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "salla" / "definition.json5"
KEY = {"MINIAPP_SYNC_SECRET_KEY": "server tests"}
ADMIN = "admin-token-for-server-tests"
SANDBOX = SandboxConfig(products=2, customers=2, orders=2, carts=0)
SECRET = SANDBOX.webhook_secret


class Served:
    def __init__(self, runtime: Runtime, url: str) -> None:
        self.runtime = runtime
        self.url = url


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """The app with its lifespan on: the processor and trigger delivery run in the background."""
    runtime = Runtime.open(str(tmp_path / "store.sqlite"), clock=FakeClock(), environ=KEY)
    runtime.add(load_miniapp(EXAMPLE))
    runtime.installations.configure("salla", {"webhookSecret": SECRET})
    runtime.store.save_installation(
        "acme", "salla", credentials=runtime.installations.vault.encrypt({}),
        metadata={"storeId": str(SANDBOX.merchant_id)}, user_input={}, status="connected",
    )  # fmt: skip
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = create_app(runtime, admin_token=ADMIN)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)  # waiting for the server to listen, not testing time
    try:
        yield Served(runtime, f"http://127.0.0.1:{sock.getsockname()[1]}")
    finally:
        server.should_exit = True
        await task
        runtime.close()


async def test_a_delivery_is_processed_in_the_background_and_counted_in_metrics(served: Served) -> None:
    raw, headers = Sandbox(SANDBOX).webhook("order.created")
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{served.url}/miniapps/salla/webhooks", data=raw, headers=headers) as response:
            assert response.status == 200
        for _ in range(500):  # the processor runs on its own task: wait for it, not for time
            async with http.get(f"{served.url}/metrics") as response:
                assert response.status == 200
                assert response.content_type == "text/plain"
                metrics = await response.text()
            if 'miniapp_sync_inbox_rows{status="done"} 1.0' in metrics:
                break
            await asyncio.sleep(0.01)
    assert 'miniapp_sync_inbox_rows{status="done"} 1.0' in metrics
    assert 'miniapp_sync_webhook_deliveries_total{ns="salla",outcome="accepted"} 1.0' in metrics
    assert 'miniapp_sync_inbox_processed_total{ns="salla",outcome="done"} 1.0' in metrics
    assert "miniapp_sync_inbox_commit_batch_size_count 1.0" in metrics


async def test_the_api_stays_behind_the_admin_token_and_documents_events(served: Served) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{served.url}/api/events", params={"tenant": "acme"}) as response:
            assert response.status == 401
        auth = {"Authorization": f"Bearer {ADMIN}"}
        async with http.get(f"{served.url}/api/openapi.json", headers=auth) as response:
            schema = await response.json()
        assert "/api/events" in schema["paths"]
        assert not any(path.startswith("/miniapps") for path in schema["paths"])
        async with http.post(f"{served.url}/miniapps/salla/webhooks/x/y", data=b"{}") as response:
            assert response.status == 404  # not a webhook path: Starlette routes it, and finds nothing


async def test_stopping_with_a_trigger_post_in_flight_stops_the_queue_before_closing_its_session(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A deliver job still running at shutdown is cancelled, not failed by an HTTP session closed under it."""
    arrived, release = asyncio.Event(), asyncio.Event()

    async def subscriber(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()  # the POST stays in flight while the server stops
        return web.Response(status=204)

    runtime = Runtime.open(str(tmp_path / "store.sqlite"), clock=FakeClock(), environ=KEY)
    runtime.add(load_miniapp(EXAMPLE))
    runtime.installations.configure("salla", {"webhookSecret": SECRET})
    runtime.store.save_installation(
        "acme", "salla", credentials=runtime.installations.vault.encrypt({}),
        metadata={"storeId": str(SANDBOX.merchant_id)}, user_input={}, status="connected",
    )  # fmt: skip
    async with post_endpoint(subscriber) as url:
        outbox = Outbox(runtime.store)
        outbox.subscribe("acme", "salla", url, seal(runtime.installations.vault, "subscriber-secret"))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(create_app(runtime), lifespan="on", log_level="warning"))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)  # waiting for the server to listen, not testing time
        raw, headers = Sandbox(SANDBOX).webhook("order.created")
        async with aiohttp.ClientSession() as http:
            hook = f"http://127.0.0.1:{sock.getsockname()[1]}/miniapps/salla/webhooks"
            async with http.post(hook, data=raw, headers=headers) as response:
                assert response.status == 200
        await asyncio.wait_for(arrived.wait(), 30)  # the deliver job's POST is in flight
        server.should_exit = True
        await task
        release.set()
    (state,) = outbox.deliveries()
    assert (state.status, state.attempts, state.error) == ("pending", 0, None)  # cut short: sent again next start
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("miniapp_sync")]
    runtime.close()
