"""A runtime with a real SQLite store holding one of everything the management API lists."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvicorn

from miniapp_sync.network import Rewrites
from miniapp_sync.runtime import Runtime, load_miniapp
from miniapp_sync.server import create_app
from miniapp_sync.store import Inbox, InboxEntry, RecordWrite
from miniapp_sync.testing import FakeClock

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "salla" / "definition.json5"
KEY = {"MINIAPP_SYNC_SECRET_KEY": "management API tests"}
ADMIN = "admin-token-for-api-tests"
# Installs through the API call the provider: send them to a port nothing listens on, so they fail fast.
NOWHERE = "http://127.0.0.1:9"


def seed(runtime: Runtime) -> str:
    """Store an installation with records, a finished run, inbox deliveries, a trigger event and a dead letter."""
    store = runtime.store
    installation = store.save_installation(
        "acme", "salla", credentials=runtime.installations.vault.encrypt({"accessToken": "tok-SECRET-1"}),
        metadata={"storeId": "1001"}, user_input={}, status="connected",
    )  # fmt: skip
    run = store.start_run(installation.id, "products")
    writes = [RecordWrite(f"p{n}", {"name": f"Product {n}", "price": n}, version=f"2026-01-0{n}") for n in (1, 2, 3)]
    store.write_records(installation.id, "core:product", writes, source="bulk", run_id=run.id)
    store.finish_run(run.id, status="succeeded", stats={"products": {"fetched": 3}})
    inbox = Inbox(store)
    inbox.add([InboxEntry("salla", installation.id, "order.created", "t-1", "pending", b'{"event":"order.created"}')])
    inbox.add([InboxEntry("salla", installation.id, None, None, "failed", b"not json", "tok-SECRET-1 not JSON")])
    (row,) = inbox.pending(installation.id, 10)
    with inbox.transaction() as tx:
        tx.emit("acme", [(row, {"record": {"contentType": "core:order", "code": "o1"}, "customer": None})])
        tx.done(row)
    store.add_dead_letter(installation.id, kind="record", source="products", payload={"id": 9}, reason="name missing")
    return installation.id


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[Runtime, str]]:
    runtime = Runtime.open(
        str(tmp_path / "store.sqlite"),
        clock=FakeClock(start=1_767_225_600.0),
        environ=KEY,
        rewrites=Rewrites({"https://accounts.salla.sa": NOWHERE, "https://api.salla.dev": NOWHERE}),
    )
    runtime.add(load_miniapp(EXAMPLE))
    try:
        yield runtime, seed(runtime)
    finally:
        runtime.close()


class Api:
    """The app served over real HTTP, and a client that sends the admin token."""

    def __init__(self, url: str, http: aiohttp.ClientSession) -> None:
        self.url = url
        self.http = http

    async def get(self, path: str, **params: Any) -> tuple[int, Any]:
        async with self.http.get(f"{self.url}{path}", params=params, headers=AUTH) as response:
            return response.status, await response.json(content_type=None)

    async def post(self, path: str, body: bytes) -> tuple[int, Any]:
        headers = {**AUTH, "Content-Type": "application/json"}
        async with self.http.post(f"{self.url}{path}", data=body, headers=headers) as response:
            return response.status, await response.json(content_type=None)


AUTH = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
async def api(seeded: tuple[Runtime, str]) -> AsyncIterator[Api]:
    runtime, _ = seeded
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = create_app(runtime, admin_token=ADMIN)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)  # waiting for the server to listen, not testing time
    try:
        async with aiohttp.ClientSession() as http:
            yield Api(f"http://127.0.0.1:{sock.getsockname()[1]}", http)
    finally:
        server.should_exit = True
        await task
