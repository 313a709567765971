"""Observability over real HTTP: /metrics after a sync and a webhook round trip, /readyz, the logs (issue 15 items 5-7).

The stack: the bundled sandbox provider, our app served by uvicorn on a real port, a subscriber
(an aiohttp server) for trigger events, and a real SQLite store.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvicorn
from aiohttp import web
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from prometheus_client.parser import text_string_to_metric_families

from miniapp_sync import logs
from miniapp_sync.network import Rewrites
from miniapp_sync.runtime import Runtime, load_miniapp
from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.server import create_app
from miniapp_sync.store.database import MIGRATIONS
from miniapp_sync.store.health import head_revision
from miniapp_sync.store.outbox import Outbox
from miniapp_sync.testing import FakeClock, post_endpoint
from miniapp_sync.webhooks.delivery import seal

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "salla" / "definition.json5"
KEY = {"MINIAPP_SYNC_SECRET_KEY": "observability tests"}
ADMIN = "admin-token-for-observability-tests"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
SANDBOX = SandboxConfig(products=30, customers=4, orders=4, carts=2)
# Every value that must never reach a log line or a metric.
SUBSCRIBER_SECRET = "subscriber-signing-secret"
SECRETS = (ADMIN, SANDBOX.access_token, SANDBOX.webhook_secret, SUBSCRIBER_SECRET, KEY["MINIAPP_SYNC_SECRET_KEY"])

SERIES = (
    "miniapp_sync_sync_runs",
    "miniapp_sync_sync_records",
    "miniapp_sync_provider_requests",
    "miniapp_sync_provider_retries",
    "miniapp_sync_provider_throttled",
    "miniapp_sync_rate_budget_wait_seconds",
    "miniapp_sync_sync_resource_seconds",
    "miniapp_sync_inbox_backlog",
    "miniapp_sync_inbox_oldest_unprocessed_seconds",
    "miniapp_sync_dead_letters",
    "miniapp_sync_webhook_rejections",
    "miniapp_sync_trigger_deliveries",
    "miniapp_sync_webhook_deliveries",
    "miniapp_sync_inbox_processed",
)


class Stack:
    """The sandbox, the served app, a subscriber, and the log lines written meanwhile."""

    def __init__(self, sandbox: Sandbox, runtime: Runtime, url: str, installation: str, log: io.StringIO) -> None:
        self.sandbox = sandbox
        self.runtime = runtime
        self.url = url
        self.installation = installation
        self.log = log

    def lines(self) -> list[dict[str, Any]]:
        """Return the JSON log lines written so far (each line must parse)."""
        return [json.loads(line) for line in self.log.getvalue().splitlines()]


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers, root.level, logging.getLogger("miniapp_sync").level
    logs.configure("json", "info", stream=stream)
    try:
        yield stream
    finally:
        root.handlers, root.level = saved[0], saved[1]
        logging.getLogger("miniapp_sync").setLevel(saved[2])


@pytest.fixture
async def subscriber() -> AsyncIterator[tuple[str, list[bytes]]]:
    received: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(status=204)

    async with post_endpoint(handle) as url:
        yield url, received


@pytest.fixture
async def stack(tmp_path: Path, log_stream: io.StringIO) -> AsyncIterator[Stack]:
    sandbox = Sandbox(SANDBOX)
    base = await sandbox.start()
    runtime = Runtime.open(
        str(tmp_path / "store.sqlite"),
        clock=FakeClock(),
        environ=KEY,
        rewrites=Rewrites({"https://accounts.salla.sa": base, "https://api.salla.dev": base}),
    )
    runtime.add(load_miniapp(EXAMPLE))
    runtime.installations.configure("salla", {"webhookSecret": SANDBOX.webhook_secret})
    installation = runtime.store.save_installation(
        "acme", "salla", credentials=runtime.installations.vault.encrypt({"accessToken": SANDBOX.access_token}),
        metadata={"storeId": str(SANDBOX.merchant_id)}, user_input={}, status="connected",
    )  # fmt: skip
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = create_app(runtime, admin_token=ADMIN)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning", log_config=None))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)  # waiting for the server to listen, not testing time
    try:
        yield Stack(sandbox, runtime, f"http://127.0.0.1:{sock.getsockname()[1]}", installation.id, log_stream)
    finally:
        server.should_exit = True
        await task
        runtime.close()
        await sandbox.stop()


async def scrape(http: aiohttp.ClientSession, url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """GET /metrics and parse it with prometheus_client's parser: family name → (labels, value) samples."""
    async with http.get(f"{url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {f.name: [(s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(text)}


async def until(check: Callable[[], Any], what: str) -> None:
    for _ in range(1000):  # the server works on its own tasks: wait for it, not for time
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def value(samples: list[tuple[dict[str, str], float]], suffix: str = "", **labels: str) -> float:
    return sum(v for found, v in samples if all(found.get(k) == want for k, want in labels.items()))


async def test_metrics_have_every_series_after_a_sync_and_a_webhook_round_trip(
    stack: Stack, subscriber: tuple[str, list[bytes]]
) -> None:
    hook_url, received = subscriber
    sealed = seal(stack.runtime.installations.vault, SUBSCRIBER_SECRET)
    Outbox(stack.runtime.store).subscribe("acme", "salla", hook_url, sealed)
    stack.sandbox.fail_next(1, status=429, path_prefix="/products", retry_after="1")
    async with aiohttp.ClientSession() as http:
        # A webhook round trip first (a record the sync then finds unchanged fires no event):
        # received, processed, its trigger event POSTed to the subscriber.
        raw, headers = stack.sandbox.webhook("order.created")
        async with http.post(f"{stack.url}/miniapps/salla/webhooks", data=raw, headers=headers) as response:
            assert response.status == 200
        # Then a bulk sync started through the API, one 429 on the way.
        sync = f"{stack.url}/api/installations/{stack.installation}/sync?resource=products"
        async with http.post(sync, headers=AUTH) as response:
            assert response.status == 202
            (job,) = (await response.json())["items"]
        run_id = ""

        async def finished() -> bool:
            nonlocal run_id
            async with http.get(f"{stack.url}/api/jobs/{job['jobId']}", headers=AUTH) as response:
                run = (await response.json())["run"]  # null until the queue starts the job
            run_id = run["id"] if run else ""
            return run is not None and run["status"] != "running"

        await until(finished, "the sync to finish")
        # Refusals: a forged signature, a body too large, a MiniApp this server does not serve.
        forged = {**headers, "x-salla-signature": "0" * 64}
        async with http.post(f"{stack.url}/miniapps/salla/webhooks", data=raw, headers=forged) as response:
            assert response.status == 401
        async with http.post(f"{stack.url}/miniapps/nope/webhooks", data=raw, headers=headers) as response:
            assert response.status == 404

        async def delivered() -> bool:
            return bool(received)

        await until(delivered, "the trigger event to reach the subscriber")
        metrics: dict[str, list[tuple[dict[str, str], float]]] = {}

        async def counted() -> bool:
            metrics.update(await scrape(http, stack.url))
            return value(metrics.get("miniapp_sync_trigger_deliveries", []), outcome="delivered") >= 1

        await until(counted, "the trigger delivery to be counted")

    missing = [name for name in SERIES if name not in metrics]
    assert not missing, f"series missing from /metrics: {missing}"
    assert value(metrics["miniapp_sync_sync_runs"], ns="salla") == 1
    assert value(metrics["miniapp_sync_sync_records"], resource="products", outcome="created") == SANDBOX.products
    assert value(metrics["miniapp_sync_provider_requests"], resource="products", status_class="2xx") >= 1
    assert value(metrics["miniapp_sync_provider_requests"], resource="products", status_class="4xx") == 1
    assert value(metrics["miniapp_sync_provider_throttled"], resource="products") == 1
    assert value(metrics["miniapp_sync_provider_retries"], resource="products") == 1
    assert value(metrics["miniapp_sync_sync_resource_seconds"], resource="products") >= 1  # _count, _sum, buckets
    assert value(metrics["miniapp_sync_inbox_backlog"], ns="salla") == 0
    assert value(metrics["miniapp_sync_inbox_oldest_unprocessed_seconds"], ns="salla") == 0
    assert value(metrics["miniapp_sync_dead_letters"], ns="salla", kind="webhook") == 0
    assert value(metrics["miniapp_sync_webhook_rejections"], ns="salla", reason="bad_signature") == 1
    assert value(metrics["miniapp_sync_webhook_rejections"], ns="nope", reason="unknown_miniapp") == 1
    assert value(metrics["miniapp_sync_trigger_deliveries"], ns="salla", outcome="delivered") == 1
    labels = {key for samples in metrics.values() for found, _ in samples for key in found}
    assert not labels & {"tenant", "installation", "installation_id"}  # cardinality: never per tenant
    # The logs of all that: one JSON object a line, with time, level, logger, event, and no secret.
    lines = stack.lines()
    assert lines
    assert all({"time", "level", "logger", "event"} <= set(line) for line in lines)
    text = stack.log.getvalue()
    assert not [secret for secret in SECRETS if secret in text]
    started = [line for line in lines if line["event"] == "sync queued through the API"]
    assert started
    assert started[0]["jobs"] == [job["jobId"]]
    assert started[0]["tenant"] == "acme"
    finished_lines = [line for line in lines if line["event"] == "sync run finished"]
    assert finished_lines[0]["run_id"] == run_id
    assert finished_lines[0]["installation"] == stack.installation
    assert any(line["logger"] == "miniapp_sync.webhooks" and line.get("status") == 401 for line in lines)


async def test_the_access_log_names_the_route_template_never_the_query_or_the_path_ids(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{stack.url}/api/installations/{stack.installation}?token=query-SECRET"
        async with http.get(url, headers=AUTH) as response:
            assert response.status == 400  # an unknown parameter: refused, and logged by its route all the same
        async with http.get(f"{stack.url}/api/installations/{stack.installation}", headers=AUTH) as response:
            assert response.status == 200
        async with http.get(f"{stack.url}/api/runs", headers={"Authorization": "Bearer wrong-SECRET"}) as response:
            assert response.status == 401
        raw, headers = stack.sandbox.webhook("order.created")
        url = f"{stack.url}/miniapps/salla/webhooks/{stack.installation}?sig=query-SECRET"
        async with http.post(url, data=raw, headers=headers) as response:
            assert response.status == 200
        forged = {**headers, "x-salla-signature": "0" * 64}
        async with http.post(url, data=raw, headers=forged) as response:
            assert response.status == 401
    access = [line for line in stack.lines() if line["logger"] == "miniapp_sync.access"]
    routes = {(line["method"], line["route"], line["status"]) for line in access}
    assert ("GET", "/api/installations/{id}", 400) in routes
    assert ("GET", "/api/installations/{id}", 200) in routes
    assert ("GET", "/api/runs", 401) in routes
    assert ("POST", "/miniapps/{ns}/webhooks/{installation}", 401) in routes
    # An accepted delivery's line is debug (the inbox is its record; the hot path formats no line).
    assert ("POST", "/miniapps/{ns}/webhooks/{installation}", 200) not in routes
    assert all(isinstance(line["ms"], float | int) for line in access)
    text = stack.log.getvalue()
    assert "SECRET" not in text
    assert stack.installation not in "".join(str(line["route"]) for line in access)
    refused = [line for line in stack.lines() if "admin token" in line["event"]]
    assert refused
    assert refused[0]["path"] == "/api/runs"
    assert refused[0]["level"] == "warning"


async def test_healthz_and_readyz_answer_when_the_store_is_current(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{stack.url}/healthz") as response:
            assert response.status == 200
        async with http.get(f"{stack.url}/readyz") as response:
            assert (response.status, await response.json()) == (200, {"ready": True})


async def test_readyz_is_not_ready_with_the_reason_when_the_store_is_at_an_older_revision(stack: Stack) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with stack.runtime.store.database.engine.begin() as conn:  # the schema of the previous release
        config.attributes["connection"] = conn
        command.downgrade(config, "-1")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{stack.url}/readyz") as response:
            assert response.status == 503
            answer = await response.json()
        async with http.get(f"{stack.url}/healthz") as response:
            assert response.status == 200  # the process is up: only readiness says "not now"
    assert answer["ready"] is False
    head = head_revision()
    previous = ScriptDirectory(str(MIGRATIONS)).get_revision(head).down_revision
    assert f"revision {previous}, this version needs {head}" in answer["reason"]
    assert "db upgrade" in answer["reason"]
