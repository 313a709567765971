"""Fixtures for webhooks: our server on a real port over a SQLite file, signed Salla deliveries, a FakeClock.

The server runs without its lifespan, so no worker runs behind a test's back: a test processes
the inbox with ``harness.process()`` and delivers trigger events with ``harness.deliver()``,
both on the FakeClock (backoff advances it instead of sleeping).
"""

from __future__ import annotations

import asyncio
import copy
import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvicorn

from miniapp_sync.definition.loader import load_file
from miniapp_sync.runtime import MiniApp, Runtime, load_miniapp
from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.server import create_app
from miniapp_sync.store import InboxRow, Installation, StoredRecord
from miniapp_sync.testing import FakeClock
from miniapp_sync.webhooks.service import WebhookService
from miniapp_sync.webhooks.settings import WebhookSettings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "salla" / "definition.json5"
KEY = {"MINIAPP_SYNC_SECRET_KEY": "webhook tests"}
ADMIN = "admin-token-for-webhook-tests"
SANDBOX = SandboxConfig(products=6, customers=6, orders=6, carts=2)
SECRET = SANDBOX.webhook_secret
LIMIT = 64 * 1024  # the test server's body limit
_EXAMPLE_DOCUMENT: dict[str, Any] | None = None


def example() -> dict[str, Any]:
    """Return a fresh copy of the example definition as a raw document."""
    global _EXAMPLE_DOCUMENT
    if _EXAMPLE_DOCUMENT is None:
        _EXAMPLE_DOCUMENT, _ = load_file(EXAMPLE)
    return copy.deepcopy(_EXAMPLE_DOCUMENT)


def write_definition(folder: Path, document: dict[str, Any], name: str = "definition.json") -> Path:
    """Write a definition document as JSON and return its path."""
    path = folder / name
    path.write_text(json.dumps(document))
    return path


class Harness:
    """Our server on 127.0.0.1, the runtime and webhook service behind it, and a signing sandbox."""

    def __init__(
        self,
        runtime: Runtime,
        service: WebhookService,
        base_url: str,
        sandbox: Sandbox,
        clock: FakeClock,
        http: aiohttp.ClientSession,
        folder: Path,
    ) -> None:
        self.runtime = runtime
        self.service = service
        self.base_url = base_url
        self.sandbox = sandbox
        self.clock = clock
        self.http = http
        self.folder = folder

    @property
    def merchant(self) -> int:
        return self.sandbox.config.merchant_id

    def serve(self, change: Callable[[dict[str, Any]], None] | None = None, name: str = "definition.json") -> MiniApp:
        """Serve the example (as ``change`` edits it), replacing the MiniApp of the same ns."""
        document = example()
        if change is not None:
            change(document)
        return self.runtime.add(load_miniapp(write_definition(self.folder, document, name)))

    def install(
        self,
        tenant: str = "acme",
        *,
        ns: str = "salla",
        metadata: dict[str, Any] | None = None,
        credentials: dict[str, Any] | None = None,
    ) -> Installation:
        """Save a connected installation (without provider calls) and make the receiver see it."""
        installation = self.runtime.store.save_installation(
            tenant,
            ns,
            credentials=self.runtime.installations.vault.encrypt(credentials or {}),
            metadata={"storeId": str(self.merchant)} if metadata is None else metadata,
            user_input={},
            status="connected",
        )
        self.service.directory.forget()
        return installation

    async def post(
        self,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        ns: str = "salla",
        installation: str | None = None,
        query: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """POST a raw delivery to our webhook route; return the status and the body."""
        url = f"{self.base_url}/miniapps/{ns}/webhooks" + (f"/{installation}" if installation else "")
        async with self.http.post(url, data=body, headers=headers or {}, params=query) as response:
            return response.status, await response.read()

    async def send(
        self, event: str, record: dict[str, Any] | None = None, *, installation: str | None = None
    ) -> tuple[int, bytes]:
        """POST the sandbox's signed delivery of ``event`` (of ``record``, else the newest record)."""
        raw, headers = self.sandbox.webhook(event, record)
        return await self.post(raw, headers, installation=installation)

    def rows(self) -> list[InboxRow]:
        """Return every inbox row, oldest first."""
        return self.service.inbox.list(limit=10_000)

    async def process(self) -> None:
        """Process the inbox until nothing is pending (retries wait on the FakeClock)."""
        await self.service.processor.settle()

    async def deliver(self) -> None:
        """Deliver trigger events until none is pending."""
        await self.service.delivery.settle()

    def record(self, installation: Installation, content_type: str, code: Any) -> StoredRecord | None:
        return self.runtime.store.get_record(installation.id, content_type, str(code))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def harness(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Harness]:
    runtime = Runtime.open(str(tmp_path / "store.sqlite"), clock=clock, environ=KEY)
    runtime.add(load_miniapp(EXAMPLE))
    runtime.installations.configure("salla", {"webhookSecret": SECRET})
    service = WebhookService(runtime, clock=clock, settings=WebhookSettings(max_body_bytes=LIMIT, commit_max_delay=0))
    app = create_app(runtime, admin_token=ADMIN, webhooks=service)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)  # waiting for the server to listen, not testing time
    try:
        async with aiohttp.ClientSession() as http:
            yield Harness(runtime, service, base_url, Sandbox(SANDBOX, clock=clock), clock, http, tmp_path)
    finally:
        await service.commit.close()
        await service.delivery.close()
        server.should_exit = True
        await task
        runtime.close()
