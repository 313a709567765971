"""Record history (D39) end to end: a bulk run, a webhook update, a bulk run again, read from the CLI and the API."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import uvicorn

from miniapp_sync.cli import main
from miniapp_sync.network import Rewrites
from miniapp_sync.runtime import MiniApp, Runtime, load_miniapp
from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.server import create_app
from miniapp_sync.store import Installation
from miniapp_sync.testing import FakeClock
from miniapp_sync.webhooks.service import WebhookService
from miniapp_sync.webhooks.settings import WebhookSettings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "salla" / "definition.json5"
KEY = {"MINIAPP_SYNC_SECRET_KEY": "history tests"}
ADMIN = "admin-token-for-history-tests"


@dataclass
class Stack:
    """The sandbox provider, our server (webhooks and API) on a real port, the runtime behind it."""

    sandbox: Sandbox
    runtime: Runtime
    service: WebhookService
    app: MiniApp
    installation: Installation
    url: str
    store: str
    clock: FakeClock
    http: aiohttp.ClientSession

    async def sync_orders(self) -> str:
        report = await self.runtime.engine.run(
            self.app.definition, self.app.plan, self.installation, resources=["orders"]
        )
        assert not report.failed, report.as_dict()
        return report.run_id

    async def send(self, event: str, record: dict[str, Any]) -> None:
        raw, headers = self.sandbox.webhook(event, record)
        async with self.http.post(f"{self.url}/miniapps/salla/webhooks", data=raw, headers=headers) as response:
            assert response.status == 200, await response.text()
        await self.service.processor.settle()

    async def api(self, path: str, **params: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        async with self.http.get(f"{self.url}{path}", params=params, headers=headers) as response:
            return response.status, await response.json(content_type=None)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    clock = FakeClock()
    sandbox = Sandbox(SandboxConfig(products=2, customers=3, orders=3, carts=1), clock=clock)
    base = await sandbox.start()
    store = str(tmp_path / "store.sqlite")
    rewrites = Rewrites({"https://accounts.salla.sa": base, "https://api.salla.dev": base})
    runtime = Runtime.open(store, clock=clock, environ=KEY, rewrites=rewrites)
    app = runtime.add(load_miniapp(EXAMPLE))
    runtime.installations.configure("salla", {"webhookSecret": sandbox.config.webhook_secret})
    installation = runtime.store.save_installation(
        "acme", "salla", credentials=runtime.installations.vault.encrypt({"accessToken": sandbox.config.access_token}),
        metadata={"storeId": str(sandbox.config.merchant_id)}, user_input={}, status="connected",
    )  # fmt: skip
    service = WebhookService(runtime, clock=clock, settings=WebhookSettings(commit_max_delay=0))
    server = uvicorn.Server(uvicorn.Config(create_app(runtime, admin_token=ADMIN, webhooks=service), lifespan="off"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)  # waiting for the server to listen, not testing time
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            yield Stack(sandbox, runtime, service, app, installation, url, store, clock, http)
    finally:
        await service.commit.close()
        await service.delivery.close()
        server.should_exit = True
        await task
        runtime.close()
        await sandbox.stop()


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    capsys.readouterr()
    assert main([*args, "--format", "json"], environ=KEY) == 0, capsys.readouterr().err
    return orjson.loads(capsys.readouterr().out)


async def test_a_bulk_run_a_webhook_update_and_a_bulk_run_again_show_three_changes_with_their_sources(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    order = stack.sandbox.data["orders"][0]
    code = str(order["id"])
    first_run = await stack.sync_orders()
    stack.clock.advance(60)
    await stack.send("order.status.updated", stack.sandbox.mutate("orders", order["id"], status="in_progress"))
    assert stack.runtime.store.list_dead_letters() == []
    (row,) = [r for r in stack.service.inbox.list() if r.event == "order.status.updated"]
    stack.clock.advance(60)
    stack.sandbox.mutate("orders", order["id"], status="completed")
    second_run = await stack.sync_orders()
    unchanged_run = await stack.sync_orders()  # nothing changed at the provider: no fourth entry

    # The CLI finds the record by its code, whatever its installation, then shows its timeline.
    (found,) = cli_json(capsys, "records", "--code", code, "--store", stack.store)["items"]
    assert (found["contentType"], found["code"]) == ("ecommerce:orders", code)
    timeline = cli_json(capsys, "records", "history", found["id"], "--store", stack.store)
    changes = timeline["items"]
    assert [(c["kind"], c["source"], c["sourceId"]) for c in changes] == [
        ("updated", "bulk", second_run),
        ("updated", "webhook", str(row.id)),
        ("created", "bulk", first_run),
    ]
    assert unchanged_run not in {c["sourceId"] for c in changes}
    by_webhook = {f["field"]: (f["old"], f["new"]) for f in changes[1]["fields"]}
    assert by_webhook["status"][1] == "in_progress"  # the partial update: only what it changed
    assert set(by_webhook) <= {"status", "updatedAt"}
    by_bulk = {f["field"]: (f["old"], f["new"]) for f in changes[0]["fields"]}
    assert by_bulk["status"] == ("in_progress", "completed")
    created = {f["field"]: f["new"] for f in changes[2]["fields"]}
    assert created["code"] == code
    assert all(f["old"] is None for f in changes[2]["fields"])

    # The API answers the same, a page at a time.
    status, page = await stack.api(f"/api/records/{found['id']}/history")
    assert (status, page) == (200, timeline)
    status, first = await stack.api(f"/api/records/{found['id']}/history", limit="2")
    assert [c["id"] for c in first["items"]] == [c["id"] for c in changes[:2]]
    status, rest = await stack.api(f"/api/records/{found['id']}/history", cursor=first["next"])
    assert ([c["id"] for c in rest["items"]], rest["next"]) == ([changes[2]["id"]], None)
    status, listed = await stack.api("/api/records", code=code)
    assert (status, listed["items"]) == (200, [found])
    status, record = await stack.api(f"/api/records/{found['id']}")
    assert (status, record) == (200, found)

    # "What changed it?" The webhook change names its delivery: one CLI command and one API call
    # show that delivery whole, the body it carried and the record change it made.
    delivery = cli_json(capsys, "deliveries", "show", changes[1]["sourceId"], "--store", stack.store)
    status, answered = await stack.api(f"/api/deliveries/{changes[1]['sourceId']}")
    assert (status, answered) == (200, delivery)
    assert (delivery["delivery"]["event"], delivery["delivery"]["status"]) == ("order.status.updated", "processed")
    assert delivery["body"]["data"]["id"] == order["id"]
    assert [c["id"] for c in delivery["records"]] == [changes[1]["id"]]
    assert [f["event"]["event"] for f in delivery["events"]] == ["order.status.updated"]


async def test_an_unknown_record_id_is_a_404_in_the_api_and_a_usage_error_in_the_cli(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    for id in ("not-an-id", "YWJj"):  # garbage, and base64 that is not a record key
        status, body = await stack.api(f"/api/records/{id}/history")
        assert (status, body["error"]["field"]) == (404, "id")
    assert main(["records", "history", "nope", "--store", stack.store], environ=KEY) == 2
    assert "no record 'nope'" in capsys.readouterr().err
    assert main(["records", "--store", stack.store], environ=KEY) == 2
    assert "--code" in capsys.readouterr().err


async def test_a_sync_from_the_cli_keeps_no_history_when_the_operator_sets_zero_days(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    base = stack.sandbox.base_url
    args = ["sync", str(EXAMPLE), "--tenant", "acme", "--resource", "orders", "--store", stack.store]
    args += ["--rewrite", f"https://api.salla.dev={base}", "--rewrite", f"https://accounts.salla.sa={base}"]
    off = {**KEY, "MINIAPP_SYNC_HISTORY_DAYS": "0"}
    assert await asyncio.to_thread(main, args, environ=off) == 0, capsys.readouterr().err
    (found, *_) = cli_json(capsys, "records", "--tenant", "acme", "--type", "ecommerce:orders", "--store", stack.store)[
        "items"
    ]
    assert cli_json(capsys, "records", "history", found["id"], "--store", stack.store)["items"] == []
