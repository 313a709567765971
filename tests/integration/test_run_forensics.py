"""Issue #15's questions about runs, each answered by one CLI command and one API call over real parts.

The sandbox provider on a real port (its faults make a resource fail or hold a page), a runtime
on a real SQLite file whose engine runs on a FakeClock (retries and rate spacing advance it
instead of sleeping; it starts at the real time so the CLI's own clock agrees on "today"), the
server over real HTTP, and the CLI in-process on the same store file.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvicorn
from tests.sync.conftest import KEY, derive, open_runtime

from miniapp_sync.cli import main
from miniapp_sync.jobs import LocalQueue, Work
from miniapp_sync.runtime import MiniApp, Runtime
from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.server import create_app
from miniapp_sync.store import Installation
from miniapp_sync.sync.reports import ResourceReport
from miniapp_sync.testing import FakeClock

ADMIN = "admin-token-for-forensics"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
HOURLY = "0 * * * *"


def _forensic(document: dict[str, Any]) -> None:
    # Two tenants of the sandbox's one merchant (no storeId: the second install is not refused), a
    # token in the products URL (a careless provider's API key: it must come out redacted), pages
    # of 10 without details, written 10 at a time, under a budget that does not bind.
    document["auth"]["userDetails"]["mapping"].pop("storeId")
    sync = document["sync"]
    sync["syncConfiguration"].update(rateLimitPerSecond=1000, batchSize=10)
    products = sync["resources"]["products"]
    products["expandDetails"] = False
    products["pagination"].update(defaultLimit=10, maxLimit=10)
    products["endpoints"]["list"]["queryParams"] = {"access_token": "[[accessToken]]"}


class Scene:
    """The sandbox, the runtime, the served API, its queue, and the CLI on the same store."""

    def __init__(self, sandbox: Sandbox, runtime: Runtime, app: MiniApp, queue: LocalQueue, url: str, store: str):
        self.sandbox = sandbox
        self.runtime = runtime
        self.app = app
        self.queue = queue
        self.url = url
        self.store = store
        self.http: aiohttp.ClientSession | None = None

    async def install(self, tenant: str) -> Installation:
        return await self.runtime.installations.install(
            self.app.definition, tenant, credentials={"accessToken": self.sandbox.config.access_token}
        )

    async def sync(self, installation: Installation, resource: str = "products", **kwargs: Any) -> str:
        engine = self.runtime.engine
        report = await engine.run(self.app.definition, self.app.plan, installation, resources=[resource], **kwargs)
        return report.run_id

    async def api(self, method: str, path: str, **params: Any) -> tuple[int, Any]:
        assert self.http is not None
        query = [(k, v) for k, vs in params.items() for v in (vs if isinstance(vs, list) else [vs])]
        async with self.http.request(method, f"{self.url}/api{path}", params=query, headers=AUTH) as response:
            return response.status, await response.json(content_type=None)

    def cli(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
        environ = {**KEY, "MINIAPP_SYNC_STORE": self.store}
        code = main(list(args), environ=environ)
        out, err = capsys.readouterr()
        return code, out, err


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    clock = FakeClock(start=time.time())  # the CLI's "today" is the real one: start there, then advance
    sandbox = Sandbox(SandboxConfig(products=30, customers=6, orders=4, carts=2))
    base = await sandbox.start()
    store = str(tmp_path / "store.sqlite")
    runtime = open_runtime(Path(store), base, clock)
    runtime.installations.configure(
        "salla", {"client_id": sandbox.config.client_id, "client_secret": sandbox.config.client_secret}
    )
    app = runtime.add(derive(_forensic))
    queue = LocalQueue(Work(runtime, default_schedule=HOURLY))  # run by the tests, when they ask
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime, admin_token=ADMIN, queue=queue), lifespan="off", log_level="warning")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)  # waiting for the server to listen, not testing time
    found = Scene(sandbox, runtime, app, queue, f"http://127.0.0.1:{sock.getsockname()[1]}", store)
    try:
        async with aiohttp.ClientSession() as http:
            found.http = http
            yield found
    finally:
        server.should_exit = True
        await task
        runtime.close()
        await sandbox.stop()


async def _a_failure(scene: Scene) -> tuple[Installation, Installation, str]:
    """acme syncs fine; globex's products answer 500 on every attempt at page 1. Return both and the failed run."""
    acme, globex = await scene.install("acme"), await scene.install("globex")
    await scene.sync(acme)
    await scene.sync(acme, "customers")
    scene.sandbox.fail_next(5, status=500, path_prefix="/products")  # each of the client's 5 attempts
    failed = await scene.sync(globex)
    await scene.sync(globex, "customers")
    return acme, globex, failed


async def test_which_tenants_syncs_failed_today_and_why(scene: Scene, capsys: pytest.CaptureFixture[str]) -> None:
    _, globex, failed = await _a_failure(scene)
    code, out, _ = scene.cli(capsys, "runs", "--status", "failed", "--since", "today", "--format", "json")
    assert code == 0
    answer = json.loads(out)
    (run,) = answer["items"]
    assert (run["id"], run["tenant"], run["ns"], run["resource"], run["status"]) == (
        failed, "globex", "salla", "products", "failed",
    )  # fmt: skip
    (error,) = run["errors"]
    assert (error["resource"], error["page"], error["status"]) == ("products", 1, 500)
    assert error["url"].startswith(scene.sandbox.base_url + "/admin/v2/products?")
    assert "access_token=***" in error["url"]
    assert "page=1" in error["url"]
    assert "answered 500 after 5 attempts" in error["message"]
    assert scene.sandbox.config.access_token not in out  # D30
    assert run["resources"][0]["requests"] == 5
    assert run["resources"][0]["retries"] == 4
    # The same question, one API call, the same answer (D37).
    status, page = await scene.api("GET", "/runs", status="failed", since="today")
    assert status == 200
    assert page == answer
    # And the run alone, in the CLI's words.
    code, out, _ = scene.cli(capsys, "runs", "show", failed)
    assert code == 0
    assert "products failed (page 1, status 500)" in " ".join(out.split())
    assert "access_token=***" in out
    assert scene.sandbox.config.access_token not in out
    assert globex.id not in out.split("\n")[0]  # the tenant and MiniApp are named, not a bare installation id
    assert "globex / salla / products" in " ".join(out.split())


async def test_each_filter_narrows_the_list(scene: Scene, capsys: pytest.CaptureFixture[str]) -> None:
    acme, globex, failed = await _a_failure(scene)
    clock = scene.runtime.clock
    assert isinstance(clock, FakeClock)
    clock.advance(3 * 86400)  # three days later, one more run
    later = await scene.sync(acme, "customers")

    async def ids(**params: Any) -> list[str]:
        status, page = await scene.api("GET", "/runs", **params)
        assert status == 200, page
        return [r["id"] for r in page["items"]]

    everything = await ids()
    assert len(everything) == 5
    assert everything[0] == later
    assert {r["tenant"] for r in (await scene.api("GET", "/runs", tenant="globex"))[1]["items"]} == {"globex"}
    assert len(await ids(tenant="globex")) == 2
    assert await ids(tenant="nobody") == []
    assert len(await ids(ns="salla")) == 5
    assert await ids(ns="zid") == []
    assert len(await ids(resource="customers")) == 3
    assert await ids(status=["failed"]) == [failed]
    assert len(await ids(status=["failed", "succeeded"])) == 5
    assert await ids(since="2d") == [later]
    assert len(await ids(until="2d")) == 4
    assert await ids(installation=acme.id, resource="products") == [(await ids(tenant="acme", resource="products"))[0]]
    day = time.strftime("%Y-%m-%d", time.gmtime(clock.now()))
    assert await ids(since=day) == [later]
    # A time that is none is refused, naming the parameter; so is a status that is none.
    status, refused = await scene.api("GET", "/runs", since="last tuesday")
    assert (status, refused["error"]["field"]) == (400, "since")
    status, refused = await scene.api("GET", "/runs", status="lost")
    assert (status, refused["error"]["field"]) == (400, "status")
    # The CLI takes the same filters.
    code, out, _ = scene.cli(capsys, "runs", "--tenant", "globex", "--resource", "products", "--format", "json")
    assert code == 0
    assert [r["id"] for r in json.loads(out)["items"]] == [failed]
    code, _, err = scene.cli(capsys, "runs", "--since", "last tuesday")
    assert code == 2
    assert "--since" in err
    code, _, err = scene.cli(capsys, "runs", "--status", "lost")
    assert code == 2
    assert "--status" in err
    code, _, err = scene.cli(capsys, "runs", "--tenant", "nobody")
    assert code == 1
    assert "nobody" in err
    del globex


async def test_a_running_run_shows_its_progress_through_the_api(scene: Scene) -> None:
    acme = await scene.install("acme")
    first_page = asyncio.Event()

    def progress(report: ResourceReport, total: int | None) -> None:
        if report.pages == 1 and not first_page.is_set():
            scene.sandbox.hang_next(100, 60.0, path_prefix="/products")  # every later page is held
            first_page.set()

    running = asyncio.create_task(scene.sync(acme, progress=progress))
    await first_page.wait()
    (run,) = scene.runtime.store.list_runs(acme.id)
    status, shown = await scene.api("GET", f"/runs/{run.id}")
    assert status == 200
    assert shown["status"] == "running"
    assert shown["finishedAt"] is None
    assert shown["durationSeconds"] is not None
    progress_now = shown["progress"]
    assert (progress_now["resource"], progress_now["records"], progress_now["pages"]) == ("products", 10, 1)
    assert progress_now["throttled"] == 0
    assert progress_now["updatedAt"] is not None
    (figures,) = shown["resources"]
    assert (figures["fetched"], figures["created"], figures["pages"]) == (10, 10, 1)
    assert figures["resumesFrom"] == {"page": 2, "seen": 10}  # page 1's checkpoint committed with its records
    # Stopped while held: the run ends interrupted, its progress and checkpoint stay.
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    status, shown = await scene.api("GET", f"/runs/{run.id}")
    assert shown["status"] == "interrupted"
    assert shown["progress"]["records"] == 10
    assert shown["resources"][0]["resumesFrom"] == {"page": 2, "seen": 10}


async def test_a_failed_run_is_retried_through_the_api_and_refused_while_it_runs(scene: Scene) -> None:
    _, globex, failed = await _a_failure(scene)
    held = scene.runtime.store.start_run(globex.id, "products")  # a run of the pair going on now
    status, refused = await scene.api("POST", f"/runs/{failed}/retry")
    assert status == 409
    assert held.id in refused["error"]["message"]
    scene.runtime.store.finish_run(held.id, status="interrupted", stats={})
    status, started = await scene.api("POST", f"/runs/{failed}/retry")
    assert status == 202
    (job,) = started["items"]
    assert (job["resource"], job["duplicate"]) == ("products", False)
    await scene.queue.run_until_idle()
    status, followed = await scene.api("GET", f"/jobs/{job['jobId']}")
    assert followed["run"]["status"] == "succeeded"
    assert followed["run"]["tenant"] == "globex"
    assert followed["run"]["resources"][0]["fetched"] == 30
    assert (await scene.api("POST", "/runs/nothing-like-it/retry"))[0] == 404


async def test_a_full_sync_ignores_the_checkpoint(scene: Scene) -> None:
    acme = await scene.install("acme")
    scene.runtime.store.write_records(acme.id, "core:product", [], source="bulk", checkpoint=("products", {"page": 3}))
    status, started = await scene.api("POST", f"/installations/{acme.id}/sync", resource="products", full="true")
    assert status == 202
    await scene.queue.run_until_idle()
    (job,) = started["items"]
    run = (await scene.api("GET", f"/jobs/{job['jobId']}"))[1]["run"]
    assert run["resources"][0]["resumedFrom"] is None
    assert run["resources"][0]["fetched"] == 30  # every page, not from page 3
    # Without full, a checkpoint is resumed from.
    scene.runtime.store.write_records(acme.id, "core:product", [], source="bulk", checkpoint=("products", {"page": 3}))
    status, started = await scene.api("POST", f"/installations/{acme.id}/sync", resource="products")
    await scene.queue.run_until_idle()
    run = (await scene.api("GET", f"/jobs/{started['items'][0]['jobId']}"))[1]["run"]
    assert run["resources"][0]["resumedFrom"] == {"page": 3}
    assert run["resources"][0]["fetched"] == 10


async def test_pause_resume_and_uninstall_through_the_api_and_the_cli(
    scene: Scene, capsys: pytest.CaptureFixture[str]
) -> None:
    acme, globex, failed = await _a_failure(scene)
    status, shown = await scene.api("GET", f"/installations/{acme.id}")
    assert status == 200
    assert shown["paused"] is False
    assert shown["nextSyncAt"] is not None
    assert {(r["resource"], r["status"]) for r in shown["lastRuns"]} == {
        ("customers", "succeeded"),
        ("products", "succeeded"),
    }
    status, paused = await scene.api("POST", f"/installations/{acme.id}/pause")
    assert status == 200
    assert paused["paused"] is True
    assert paused["pausedAt"] is not None
    assert paused["nextSyncAt"] is None
    scheduled = scene.queue.work.scheduled_jobs  # what a tick enqueues, on either backend
    assert {j.installation_id for j in scheduled("salla")} == {globex.id}
    status, listed = await scene.api("GET", "/installations")
    assert {(i["tenant"], i["paused"]) for i in listed["items"]} == {("acme", True), ("globex", False)}
    globex_view = next(i for i in listed["items"] if i["tenant"] == "globex")
    assert {(r["resource"], r["status"], r["runId"]) for r in globex_view["lastRuns"]} >= {
        ("products", "failed", failed)
    }
    status, resumed = await scene.api("POST", f"/installations/{acme.id}/resume")
    assert resumed["paused"] is False
    assert resumed["nextSyncAt"] is not None
    assert {j.installation_id for j in scheduled("salla")} == {acme.id, globex.id}
    # The CLI, with the definition as every operator command takes it.
    definition = scene.app.definition
    assert definition.ns == "salla"
    path = Path(scene.store).parent / "salla.json"
    document = _document()
    path.write_text(json.dumps(document))
    code, out, _ = scene.cli(capsys, "pause", str(path), "--tenant", "globex", "--format", "json")
    assert code == 0
    assert json.loads(out)["paused"] is True
    assert scene.queue.work.scheduled_jobs("salla")
    assert all(j.installation_id == acme.id for j in scene.queue.work.scheduled_jobs("salla"))
    code, out, _ = scene.cli(capsys, "resume", str(path), "--tenant", "globex")
    assert code == 0
    assert "resumed" in out
    assert scene.runtime.store.get_installation(globex.id).paused_at is None  # type: ignore[union-attr]
    # Uninstall, as `miniapp-sync uninstall` does: credentials forgotten, records kept.
    records = scene.runtime.store.count_records(acme.id, "core:product")
    status, gone = await scene.api("DELETE", f"/installations/{acme.id}")
    assert status == 200
    assert gone["status"] == "uninstalled"
    assert scene.runtime.installations.credentials(scene.runtime.installations.get(acme.id)) == {}
    assert scene.runtime.store.count_records(acme.id, "core:product") == records > 0
    assert all(j.installation_id != acme.id for j in scene.queue.work.scheduled_jobs("salla"))
    assert (await scene.api("DELETE", "/installations/nothing-like-it"))[0] == 404
    assert (await scene.api("POST", "/installations/nothing-like-it/pause"))[0] == 404


def _document() -> dict[str, Any]:
    from tests.sync.conftest import EXAMPLE

    from miniapp_sync.definition.loader import load_file

    document, _ = load_file(EXAMPLE)
    _forensic(document)
    return document
