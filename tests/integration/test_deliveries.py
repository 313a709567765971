"""Deliveries forensics and bulk replay (issue 15), end to end: real serve over HTTP, its embedded queue, a SQLite file.

Question 2: "which webhooks were refused or parked, and can I replay them after fixing the
definition?" — answered with one CLI command and one API call, then a replay of all that match.
"""

from __future__ import annotations

import asyncio
import copy
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import uvicorn
from aiohttp import web

from miniapp_sync.cli import main
from miniapp_sync.definition.loader import load_file
from miniapp_sync.runtime import MiniApp, Runtime, load_miniapp
from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.server import create_app
from miniapp_sync.store import Inbox, Installation, Outbox
from miniapp_sync.testing import post_endpoint
from miniapp_sync.webhooks.delivery import seal
from miniapp_sync.webhooks.service import WebhookService
from miniapp_sync.webhooks.settings import WebhookSettings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "salla" / "definition.json5"
KEY = {"MINIAPP_SYNC_SECRET_KEY": "deliveries tests"}
ADMIN = "admin-token-for-deliveries-tests"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


def definition(folder: Path, name: str, change: Callable[[dict[str, Any]], None] | None = None) -> MiniApp:
    document, _ = load_file(EXAMPLE)
    document = copy.deepcopy(document)
    if change is not None:
        change(document)
    path = folder / name
    path.write_text(json.dumps(document))
    return load_miniapp(path)


def break_orders(document: dict[str, Any]) -> None:
    """A mapping that rejects every order.created: its code is read from a path that is never there."""
    document["sync"]["webhooks"]["handlers"]["order.created"]["mapping"]["code"] = "$.data.nope"


@dataclass
class Stack:
    sandbox: Sandbox
    runtime: Runtime
    installation: Installation
    url: str
    store: str
    folder: Path
    http: aiohttp.ClientSession
    posts: list[dict[str, Any]]

    async def post(self, raw: bytes, headers: dict[str, str]) -> int:
        async with self.http.post(f"{self.url}/miniapps/salla/webhooks", data=raw, headers=headers) as response:
            return response.status

    async def send(self, event: str, record: dict[str, Any] | None = None) -> int:
        return await self.post(*self.sandbox.webhook(event, record))

    async def api(self, method: str, path: str, body: Any = None, **params: Any) -> tuple[int, Any]:
        async with self.http.request(method, f"{self.url}{path}", params=params, json=body, headers=AUTH) as response:
            return response.status, await response.json(content_type=None)

    async def settled(self) -> None:
        """Wait until the embedded queue has processed every stored delivery."""
        inbox = Inbox(self.runtime.store)
        await until(lambda: not [r for r in inbox.list(limit=1000) if r.status in ("pending", "processing")])

    async def cli(self, capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> Any:
        """Run a command with --format json; return what it printed (on stderr when it failed, D37)."""
        capsys.readouterr()
        # In a thread, as beside a running server: the CLI runs its own event loop.
        assert await asyncio.to_thread(main, [*args, "--store", self.store, "--format", "json"], environ=KEY) == code
        out, err = capsys.readouterr()
        return orjson.loads(out if code == 0 else err)


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)  # waiting for the server's queue, not testing time


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    sandbox = Sandbox(SandboxConfig(products=2, customers=3, orders=4, carts=1))
    await sandbox.start()
    store = str(tmp_path / "store.sqlite")
    runtime = Runtime.open(store, environ=KEY)
    runtime.add(definition(tmp_path, "broken.json", break_orders))
    runtime.installations.configure("salla", {"webhookSecret": sandbox.config.webhook_secret})
    installation = runtime.store.save_installation(
        "acme", "salla", credentials=runtime.installations.vault.encrypt({"accessToken": sandbox.config.access_token}),
        metadata={"storeId": str(sandbox.config.merchant_id)}, user_input={}, status="connected",
    )  # fmt: skip
    posts: list[dict[str, Any]] = []

    async def subscriber(request: web.Request) -> web.Response:
        posts.append(await request.json())
        return web.Response(text="ok")

    service = WebhookService(runtime, settings=WebhookSettings(commit_max_delay=0))
    app = create_app(runtime, admin_token=ADMIN, webhooks=service)  # with its lifespan: the embedded queue runs
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)  # waiting for the server to listen, not testing time
    try:
        async with post_endpoint(subscriber) as hook, aiohttp.ClientSession() as http:
            Outbox(runtime.store).subscribe("acme", "salla", hook, seal(runtime.installations.vault, "s3cret"))
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            yield Stack(sandbox, runtime, installation, url, store, tmp_path, http, posts)
    finally:
        server.should_exit = True
        await task
        runtime.close()
        await sandbox.stop()


async def refuse_and_park(stack: Stack) -> dict[str, Any]:
    """A forged signature, an unknown tenant, a mapping that rejects, and one that goes through."""
    orders = stack.sandbox.data["orders"]
    raw, headers = stack.sandbox.webhook("order.created", orders[0])
    assert await stack.post(raw, {**headers, "X-Salla-Signature": "f" * 64}) == 401  # forged
    stranger = orjson.dumps({**orjson.loads(raw), "merchant": 424242})
    assert await stack.post(stranger, {"Content-Type": "application/json"}) == 404  # nobody's, unverified
    assert await stack.post(raw, headers) == 200  # stored, then its record is rejected: dead-lettered
    assert await stack.send("order.status.updated", orders[1]) == 200  # processed
    await stack.settled()
    return orders[1]


async def test_which_webhooks_were_refused_or_parked_and_why(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    updated = await refuse_and_park(stack)
    answer = await stack.cli(capsys, "deliveries")  # one CLI command
    status, api = await stack.api("GET", "/api/deliveries")  # one API call
    assert (status, api) == (200, answer)
    shown = [(d["status"], d["reason"], d["event"], d["tenant"]) for d in answer["items"]]
    assert shown == [  # newest first
        ("processed", None, "order.status.updated", "acme"),
        ("dead", None, "order.created", "acme"),
        ("rejected", "unknown_tenant", None, None),
        ("rejected", "bad_signature", None, None),
    ]
    errors = [d["error"] for d in answer["items"]]
    assert "rejected the record" in errors[1]
    assert "nope" in errors[1]
    assert "424242" in errors[2]
    assert "signature does not verify" in errors[3]

    # The refused and the parked, each filter on its own, CLI and API alike.
    status, refused = await stack.api("GET", "/api/deliveries", status="rejected", reason="unknown_tenant")
    assert [d["id"] for d in refused["items"]] == [answer["items"][2]["id"]]
    assert await stack.cli(capsys, "deliveries", "--status", "rejected", "--reason", "unknown_tenant") == refused
    # Several states at once (as the overview's backlog links them): any of them, CLI and API alike.
    several = [("status", "dead"), ("status", "rejected")]
    async with stack.http.get(f"{stack.url}/api/deliveries", params=several, headers=AUTH) as response:
        either = await response.json()
    assert [d["status"] for d in either["items"]] == ["dead", "rejected", "rejected"]
    assert await stack.cli(capsys, "deliveries", "--status", "dead", "--status", "rejected") == either
    status, mine = await stack.api("GET", "/api/deliveries", tenant="acme")
    assert [d["status"] for d in mine["items"]] == ["processed", "dead"]
    status, created = await stack.api("GET", "/api/deliveries", event="order.created")
    assert [d["status"] for d in created["items"]] == ["dead"]
    status, later = await stack.api("GET", "/api/deliveries", since="2099-01-01T00:00:00Z")
    assert later["items"] == []
    status, earlier = await stack.api("GET", "/api/deliveries", until="2099-01-01T00:00:00Z", limit="3")
    assert len(earlier["items"]) == 3
    assert earlier["next"] is not None
    status, rest = await stack.api("GET", "/api/deliveries", until="2099-01-01T00:00:00Z", cursor=earlier["next"])
    assert [d["id"] for d in earlier["items"] + rest["items"]] == [d["id"] for d in answer["items"]]
    # Relative times read as a run search's do (one parser): the last day holds them all, CLI and API alike.
    status, recent = await stack.api("GET", "/api/deliveries", since="24h")
    assert status == 200, recent
    assert [d["id"] for d in recent["items"]] == [d["id"] for d in answer["items"]]
    assert await stack.cli(capsys, "deliveries", "--since", "1h") == recent
    status, bad = await stack.api("GET", "/api/deliveries", since="last tuesday")
    assert (status, bad["error"]["field"]) == (400, "since")

    # Text search in the bodies: the delivery of that one order, and nothing for text in none.
    status, found = await stack.api("GET", "/api/deliveries", q=f'"id":{updated["id"]}')
    assert [d["event"] for d in found["items"]] == ["order.status.updated"]
    assert await stack.cli(capsys, "deliveries", "--search", f'"id":{updated["id"]}') == found
    status, none = await stack.api("GET", "/api/deliveries", q="no body holds this")
    assert none["items"] == []

    # The parked one whole: the body, why, and the dead letter a replay goes through.
    dead = answer["items"][1]
    status, detail = await stack.api("GET", f"/api/deliveries/{dead['id']}")
    assert status == 200
    assert detail == await stack.cli(capsys, "deliveries", "show", dead["id"])
    assert detail["body"]["event"] == "order.created"  # parsed JSON
    assert detail["deadLetterId"] is not None
    assert (detail["records"], detail["events"]) == ([], [])
    # The processed one: the record it wrote and the trigger event it fired, with its POST.
    await until(lambda: len(stack.posts) == 1)
    status, done = await stack.api("GET", f"/api/deliveries/{answer['items'][0]['id']}")
    (change,) = done["records"]
    assert change["source"] == "webhook"
    assert change["sourceId"] == answer["items"][0]["id"]
    (fired,) = done["events"]
    assert fired["event"]["event"] == "order.status.updated"
    await until(lambda: [d.status for d in Outbox(stack.runtime.store).deliveries()] == ["delivered"])
    # A refusal: redacted headers, no body.
    status, forged = await stack.api("GET", f"/api/deliveries/{answer['items'][3]['id']}")
    assert forged["body"] is None
    assert forged["headers"]["x-salla-signature"] == "[redacted]"
    assert (await stack.api("GET", "/api/deliveries/r999"))[0] == 404
    assert (await stack.api("GET", "/api/deliveries/nonsense"))[0] == 404


async def test_a_dead_letter_replayed_after_the_fix_is_processed_once_and_fires_once(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    await refuse_and_park(stack)
    await until(lambda: len(stack.posts) == 1)  # the processed order.status.updated
    posts_before = len(stack.posts)
    (dead,) = (await stack.cli(capsys, "deliveries", "--status", "dead"))["items"]
    fixed = stack.runtime.add(definition(stack.folder, "fixed.json"))  # the server replays through this one now

    # The preview says what would happen, against which definition, and changes nothing.
    everything = {"filter": {"status": "dead"}, "preview": True}
    status, preview = await stack.api("POST", "/api/deliveries/replay", everything)
    assert status == 200, preview
    assert (preview["count"], preview["byEvent"]) == (1, {"order.created": 1})
    assert preview["byInstallation"] == [{"installationId": stack.installation.id, "tenant": "acme", "count": 1}]
    assert preview["definitions"] == [{"ns": "salla", "version": "1.0.0", "digest": fixed.digest}]
    either = {"filter": {"status": ["dead", "failed"]}, "preview": True}  # several states: any of them
    assert await stack.api("POST", "/api/deliveries/replay", either) == (200, preview)
    unasked = await stack.cli(capsys, "deliveries", "replay", "--status", "dead", "-d", str(EXAMPLE), code=2)
    assert "--preview or --yes" in unasked["error"]["message"]  # under --format json there is nobody to ask
    previewed = await stack.cli(capsys, "deliveries", "replay", "--status", "dead", "-d", str(EXAMPLE), "--preview")
    assert previewed["count"] == 1
    status, still = await stack.api("GET", f"/api/deliveries/{dead['id']}")
    assert still["delivery"]["status"] == "dead"
    assert still["deadLetterId"] is not None
    assert Outbox(stack.runtime.store).count_events("acme") == 1

    # Replay all matching: a job, whose report GET /api/jobs/{id} shows.
    status, queued = await stack.api("POST", "/api/deliveries/replay", {"filter": {"status": "dead"}})
    assert status == 202, queued
    assert queued["jobId"] is not None
    assert queued["status"] == "queued"

    async def job() -> dict[str, Any]:
        return (await stack.api("GET", f"/api/jobs/{queued['jobId']}"))[1]

    report: dict[str, Any] = {}

    async def finished() -> None:
        nonlocal report
        while (report := await job())["replay"]["status"] != "done":
            await asyncio.sleep(0.02)  # waiting for the queue, not testing time

    await asyncio.wait_for(finished(), 20)
    assert report["run"] is None
    counts = report["replay"]["report"]
    assert (counts["processed"], counts["failed"], counts["stillDead"]) == (1, 0, 0)
    assert counts["definition"]["digest"] == fixed.digest
    await until(lambda: len(stack.posts) == posts_before + 1)  # its trigger event, once
    assert stack.posts[-1]["event"] == "order.created"
    status, now = await stack.api("GET", f"/api/deliveries/{dead['id']}")
    assert now["delivery"]["status"] == "processed"
    assert now["deadLetterId"] is None
    assert [f["event"]["event"] for f in now["events"]] == ["order.created"]
    assert len(now["records"]) == 1

    # A second replay changes nothing: nothing matches, and the id itself is skipped.
    status, again = await stack.api("POST", "/api/deliveries/replay", {"filter": {"status": "dead"}})
    assert status == 409
    assert "nothing to replay" in again["error"]["message"]
    status, by_id = await stack.api("POST", "/api/deliveries/replay", {"ids": [dead["id"]], "preview": True})
    assert (by_id["count"], by_id["skipped"]) == (0, 1)
    assert "processed already" in by_id["items"][0]["detail"]
    refused = await stack.cli(capsys, "deliveries", "replay", dead["id"], "-d", str(EXAMPLE), "--yes", code=1)
    assert "nothing to replay" in refused["error"]["message"]
    assert Outbox(stack.runtime.store).count_events("acme") == 2
    await stack.settled()
    assert len(stack.posts) == posts_before + 1


async def test_a_given_up_trigger_delivery_is_redelivered_once_through_the_api(stack: Stack) -> None:
    await refuse_and_park(stack)
    await until(lambda: len(stack.posts) == 1)  # the processed order.status.updated's event
    outbox = Outbox(stack.runtime.store)
    await until(lambda: [d.status for d in outbox.deliveries()] == ["delivered"])
    (state,) = outbox.deliveries()
    event, subscription = state.event_id, state.subscription_id
    path = f"/api/events/{event}/redeliver"
    status, refused = await stack.api("POST", path, {"subscription": subscription})
    assert status == 409  # delivered: sending it again would reach the subscriber twice
    assert "delivered already" in refused["error"]["message"]
    outbox.settle(event, subscription, status="failed", error="gave up after 8 attempts; last: 503")

    status, answer = await stack.api("POST", path, {"subscription": subscription})
    assert status == 202, answer
    assert answer["eventId"] == str(event)
    assert (answer["delivery"]["status"], answer["delivery"]["attempts"]) == ("failed", 2)  # as it stood
    assert answer["jobId"] is not None
    await until(lambda: len(stack.posts) == 2)  # the deliver job sent it: once more
    assert stack.posts[1]["id"] == str(event)
    await until(lambda: [d.status for d in outbox.deliveries()] == ["delivered"])
    assert [d.attempts for d in outbox.deliveries()] == [3]

    assert (await stack.api("POST", path, {"subscription": "nobody"}))[0] == 404
    status, bad = await stack.api("POST", path, {"subscriber": subscription})
    assert (status, bad["error"]["field"]) == (400, "subscription")
    assert (await stack.api("POST", "/api/events/0/redeliver", {"subscription": subscription}))[0] == 400
    await stack.settled()
    assert len(stack.posts) == 2
