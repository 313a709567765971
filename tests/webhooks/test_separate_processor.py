"""``serve --processor separate`` (the default on SQLite): a child process runs the jobs, the server receives.

Real processes over real HTTP and one store file: under load both write it, and every acknowledged
delivery is processed exactly once; signals stop both; a processor that dies stops the server.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import signal
import socket
import subprocess
import threading
import time
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import cast

import aiohttp
import orjson
import pytest
import uvicorn
import uvloop

from miniapp_sync.jobs.separate import ForwardingQueue, ProcessorPlan, ProcessorProcess
from miniapp_sync.jobs.work import Work
from miniapp_sync.runtime import Runtime, load_miniapp
from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.server import create_app
from miniapp_sync.store import Added, Inbox, InboxEntry, Installation, Outbox, Store
from miniapp_sync.testing import sandbox_thread
from miniapp_sync.webhooks.settings import WebhookSettings

from .conftest import EXAMPLE, KEY, SANDBOX, SECRET
from .test_kill import CLI, free_port

DELIVERIES = 600
ADMIN = "admin-token-for-separate-processor-tests"


class Serve:
    """A ``miniapp-sync serve`` process, its log, and the pid of the inbox processor it announced."""

    def __init__(self, store: Path, folder: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log, out = folder / "serve.log", folder / "serve.out"
        args = [CLI, "serve", "-d", str(EXAMPLE), "--store", str(store), "--port", str(self.port), *extra]
        with self.log.open("ab") as stderr, out.open("wb") as stdout:
            self.process = subprocess.Popen(
                [*args, "--config", f"webhookSecret={SECRET}"],
                stdout=stdout,
                stderr=stderr,
                env={**os.environ, **KEY, "MINIAPP_SYNC_ADMIN_TOKEN": ADMIN},
                start_new_session=True,  # a process group of its own, as a terminal would give it
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # waiting for another process to announce itself, not testing time
            assert self.process.poll() is None, self.log.read_text()
            found = re.search(r"inbox processor: pid (\d+)", out.read_text())
            if found:
                self.child = int(found.group(1))
                return
            time.sleep(0.05)
        raise AssertionError(f"serve did not start: {self.log.read_text()}")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        return self.process.wait(60)


def alive(pid: int) -> bool:
    """Return whether a process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def install(store_path: Path, credentials: dict[str, str] | None = None) -> Installation:
    with Runtime.open(str(store_path), environ=KEY) as runtime:
        return runtime.store.save_installation(
            "acme", "salla", credentials=runtime.installations.vault.encrypt(credentials or {}),
            metadata={"storeId": str(SANDBOX.merchant_id)}, user_input={}, status="connected",
        )  # fmt: skip


async def send_all(url: str, deliveries: list[tuple[bytes, dict[str, str]]]) -> set[str]:
    """Send deliveries 32 at a time; return the transaction ids acknowledged."""
    acked: set[str] = set()
    queue = list(reversed(deliveries))

    async def worker(http: aiohttp.ClientSession) -> None:
        while queue:
            raw, headers = queue.pop()
            async with http.post(url, data=raw, headers=headers) as response:
                await response.read()
                if response.status == 200:
                    acked.add(str(orjson.loads(raw)["data"]["id"]))

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(worker(http) for _ in range(32)))
    return acked


def wait_processed(store_path: Path, count: int) -> Store:
    store = Store.open(str(store_path))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # watching the other process catch up
        counts = Inbox(store).counts()
        if counts.get("done", 0) >= count and not counts.get("pending") and not counts.get("processing"):
            return store
        time.sleep(0.05)
    store.close()
    raise AssertionError(f"not processed in time: {counts}")


def test_under_load_both_processes_write_and_every_acknowledged_delivery_is_processed_once(tmp_path: Path) -> None:
    store_path = tmp_path / "store.sqlite"
    installation = install(store_path)
    sandbox = Sandbox(SANDBOX)
    orders = sandbox.data["orders"]
    deliveries = [
        sandbox.webhook("order.created", {**orders[i % len(orders)], "id": 7_000_000 + i}) for i in range(DELIVERIES)
    ]
    serve = Serve(store_path, tmp_path)
    try:
        assert serve.child != serve.process.pid
        assert alive(serve.child)
        acked = asyncio.run(send_all(f"{serve.url}/miniapps/salla/webhooks", deliveries))
        assert len(acked) == DELIVERIES
        with wait_processed(store_path, DELIVERIES) as store:
            rows = [r for r in Inbox(store).list(limit=10_000) if r.installation_id]
            assert {r.status for r in rows} == {"done"}
            assert {r.transaction_id for r in rows} == acked  # nothing acknowledged is lost
            assert all(r.attempts == 1 for r in rows)  # nor processed twice
            events = Outbox(store).events("acme", limit=10_000)
            assert sorted(e.inbox_id for e in events) == sorted(r.id for r in rows)  # one trigger event each
            assert store.count_records(installation.id, "ecommerce:orders") == DELIVERIES
        metrics = asyncio.run(_get(f"{serve.url}/metrics"))  # the server's series and its processor's, in one
        assert f'miniapp_sync_webhook_deliveries_total{{ns="salla",outcome="accepted"}} {DELIVERIES}.0' in metrics
        assert f'miniapp_sync_inbox_processed_total{{ns="salla",outcome="done"}} {DELIVERIES}.0' in metrics
        assert f'miniapp_sync_inbox_rows{{status="done"}} {DELIVERIES}.0' in metrics
    finally:
        status = serve.stop()
    assert status in (0, -signal.SIGTERM), serve.log.read_text()  # uvicorn re-raises the SIGTERM it handled
    assert not alive(serve.child)  # stopped with its server: no orphan
    assert "Traceback" not in serve.log.read_text()


def test_a_sync_cut_short_by_sigterm_ends_interrupted_and_the_processor_stops(tmp_path: Path) -> None:
    store_path = tmp_path / "store.sqlite"
    slow = SandboxConfig(products=400, customers=0, orders=0, carts=0, latency=0.2)
    with sandbox_thread(slow) as (_, base):
        installation = install(store_path, {"accessToken": "sandbox-access-token"})
        rewrites = ["--rewrite", f"https://api.salla.dev={base}", "--rewrite", f"https://accounts.salla.sa={base}"]
        serve = Serve(store_path, tmp_path, *rewrites, "--allow-private-network")
        try:
            auth = {"Authorization": f"Bearer {ADMIN}"}
            started = _post(f"{serve.url}/api/installations/{installation.id}/sync?resource=products", auth)
            assert started["items"][0]["jobId"]
            with Store.open(str(store_path)) as store:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:  # waiting for the child to start the run
                    runs = store.list_runs(installation.id)
                    if runs and runs[0].status == "running":
                        break
                    time.sleep(0.05)
                assert runs, "no run started"
                assert runs[0].status == "running", runs
        finally:
            serve.stop()
    assert not alive(serve.child)
    with Store.open(str(store_path)) as store:
        (run,) = store.list_runs(installation.id)
        assert run.status == "interrupted"  # D38, in the child
        assert run.job_id == started["items"][0]["jobId"]  # the id the server answered leads to the child's run


def test_a_processor_that_dies_stops_the_server_with_an_error(tmp_path: Path) -> None:
    store_path = tmp_path / "store.sqlite"
    install(store_path)
    serve = Serve(store_path, tmp_path)
    os.kill(serve.child, signal.SIGKILL)
    assert serve.process.wait(60) == 1
    log = serve.log.read_text()
    assert f"the inbox processor (pid {serve.child}) was killed by signal SIGKILL" in log
    assert "Error:" in log
    assert "start serve again" in log
    assert "Traceback" not in log


def test_ctrl_c_stops_both_processes(tmp_path: Path) -> None:
    store_path = tmp_path / "store.sqlite"
    install(store_path)
    serve = Serve(store_path, tmp_path)
    raw, headers = Sandbox(SANDBOX).webhook("order.created")
    assert asyncio.run(send_all(f"{serve.url}/miniapps/salla/webhooks", [(raw, headers)]))
    os.killpg(serve.process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: to the whole process group
    serve.process.wait(60)
    assert not alive(serve.child)
    assert "Traceback" not in serve.log.read_text()


def test_inline_runs_no_processor_process(tmp_path: Path) -> None:
    store_path = tmp_path / "store.sqlite"
    port = free_port()
    out = tmp_path / "serve.out"
    args = [CLI, "serve", "-d", str(EXAMPLE), "--store", str(store_path), "--port", str(port), "--processor", "inline"]
    with out.open("wb") as stdout:
        process = subprocess.Popen(args, stdout=stdout, stderr=subprocess.DEVNULL, env={**os.environ, **KEY})
    try:
        deadline = time.monotonic() + 30
        while "serving" not in out.read_text() and time.monotonic() < deadline:  # waiting for the announcement
            time.sleep(0.05)
        assert "serving salla" in out.read_text()
        assert "inbox processor" not in out.read_text()
        assert Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split() == []
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)


def _post(url: str, headers: dict[str, str]) -> dict[str, list[dict[str, str]]]:
    async def call() -> dict[str, list[dict[str, str]]]:
        async with aiohttp.ClientSession() as http, http.post(url, headers=headers) as response:
            assert response.status == 202, await response.text()
            body: dict[str, list[dict[str, str]]] = await response.json()
            return body

    return asyncio.run(call())


async def _get(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        return await response.text()


def test_a_server_killed_outright_leaves_no_orphan(tmp_path: Path) -> None:
    store_path = tmp_path / "store.sqlite"
    install(store_path)
    serve = Serve(store_path, tmp_path)
    assert serve.stop(signal.SIGKILL) == -signal.SIGKILL
    deadline = time.monotonic() + 30
    while alive(serve.child) and time.monotonic() < deadline:  # waiting for the child to see the end of its channel
        time.sleep(0.05)
    assert not alive(serve.child)


def test_the_processor_stops_at_once_while_the_servers_event_loop_still_holds_the_channel(tmp_path: Path) -> None:
    # serve's loop is uvloop, whose transport holds a reference to the channel's socket: closing the
    # socket object alone ended nothing, so a stop that found the transport open (the server's
    # lifespan cut short) waited out STOP_GRACE and killed the processor.
    import uvloop

    store_path = tmp_path / "store.sqlite"
    install(store_path)
    plan = ProcessorPlan(functools.partial(Runtime.open, str(store_path), environ=KEY), WebhookSettings(), None)
    processor = ProcessorProcess.start(plan, lambda: None)

    async def stop_with_the_channel_open() -> None:
        _, writer = await asyncio.open_connection(sock=processor.channel)  # as ForwardingQueue opens it
        await asyncio.to_thread(processor.stop, 60.0)
        writer.close()

    uvloop.run(stop_with_the_channel_open())
    assert processor.process.exitcode == 0  # it stopped by itself: not killed after the grace


async def test_a_request_cancelled_while_it_waits_leaves_no_answer_for_the_next() -> None:
    # An API request whose client goes away is cancelled while it waits for the processor's answer;
    # the next request must read its own answer, not the cancelled one's.
    ours, theirs = socket.socketpair()
    queue = ForwardingQueue(cast(Work, None), ProcessorProcess(cast(BaseProcess, None), ours), on_death=lambda: None)
    reader, writer = await asyncio.open_connection(sock=theirs)
    asked, release = asyncio.Event(), asyncio.Event()

    async def processor() -> None:  # answers each request in turn, the first one late
        for answer in ("first", "second"):
            await reader.readline()
            if answer == "first":
                asked.set()
                await release.wait()
            writer.write(orjson.dumps({"metrics": answer}) + b"\n")
            await writer.drain()

    answering = asyncio.create_task(processor())
    cancelled = asyncio.create_task(queue.metrics())
    await asked.wait()
    cancelled.cancel()
    release.set()
    assert await queue.metrics() == b"second"
    await answering
    await queue.close()
    writer.close()


def test_a_stop_after_the_servers_watch_ended_is_never_taken_for_a_child_that_would_not_stop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # serve watches its processor while it runs, and stops it at the end. The watch used to join the
    # child in a thread that went on waiting after it was cancelled; the two waits raced for the
    # child's exit status, and the loser read the child as alive and killed it ("did not stop").
    store_path = tmp_path / "store.sqlite"
    install(store_path)
    plan = ProcessorPlan(functools.partial(Runtime.open, str(store_path), environ=KEY), WebhookSettings(), None)
    for _ in range(8):
        processor = ProcessorProcess.start(plan, lambda: None)

        async def watch_then_stop(processor: ProcessorProcess = processor) -> None:
            queue = ForwardingQueue(cast(Work, None), processor, on_death=lambda: None)
            watching = asyncio.create_task(queue.run_worker())
            for _ in range(10):
                await asyncio.sleep(0)  # the watch is under way
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
            await asyncio.to_thread(processor.stop, 60.0)

        asyncio.run(watch_then_stop())
        assert processor.process.exitcode == 0
    assert "did not stop" not in caplog.text  # each stopped by itself: none was taken for stuck and killed


def _serving_runtime(store_path: Path) -> Runtime:
    """The runtime serve opens, in its server and in its processor: the example MiniApp, its webhook secret."""
    runtime = Runtime.open(str(store_path), environ=KEY)
    runtime.add(load_miniapp(EXAMPLE))
    runtime.installations.configure("salla", {"webhookSecret": SECRET})
    return runtime


@pytest.mark.parametrize("separate", [True, False], ids=["separate", "inline"])
def test_the_inbox_commit_leaves_the_loop_only_when_the_processor_is_another_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, separate: bool
) -> None:
    # Receiving alone, the server's loop must not wait for the writer lock (held by the processor)
    # and the fsync: its commit runs on a thread of its own. With the processor on the same loop,
    # the commit stays inline (handing it to a thread cost more in GIL handoffs).
    store_path = tmp_path / "store.sqlite"
    install(store_path)
    plan = ProcessorPlan(functools.partial(_serving_runtime, store_path), WebhookSettings(), None)
    processor = ProcessorProcess.start(plan, lambda: None) if separate else None  # forked before any thread
    committed_on: list[int] = []
    add = Inbox.add

    def recording_add(inbox: Inbox, entries: list[InboxEntry]) -> list[Added]:
        committed_on.append(threading.get_ident())
        return add(inbox, entries)

    monkeypatch.setattr(Inbox, "add", recording_add)
    sandbox = Sandbox(SANDBOX)
    orders = sandbox.data["orders"]
    deliveries = [sandbox.webhook("order.created", {**orders[i % 6], "id": 8_000_000 + i}) for i in range(64)]

    died = threading.Event()

    async def receive() -> tuple[int, set[str]]:
        runtime = _serving_runtime(store_path)
        queue = ForwardingQueue(Work(runtime), processor, on_death=died.set) if processor is not None else None
        server = uvicorn.Server(uvicorn.Config(create_app(runtime, queue=queue), log_level="warning"))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                await asyncio.sleep(0.01)  # waiting for the server to listen, not testing time
            acked = await send_all(f"http://127.0.0.1:{sock.getsockname()[1]}/miniapps/salla/webhooks", deliveries)
        finally:
            server.should_exit = True
            await serving  # its lifespan ends: the commit thread and the processor stop
            runtime.close()
        return threading.get_ident(), acked

    loop_thread, acked = uvloop.run(receive())
    assert not died.is_set()
    assert len(acked) == len(deliveries)
    with Store.open(str(store_path)) as store:
        assert {r.transaction_id for r in Inbox(store).list(limit=1000)} == acked  # each committed before its answer
    assert committed_on
    if separate:
        assert loop_thread not in committed_on
        assert len(set(committed_on)) == 1  # one committer thread
    else:
        assert set(committed_on) == {loop_thread}
