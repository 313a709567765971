"""Scale-out end to end (D32-D34): two `serve` and two `worker` processes on one PostgreSQL, syncs of
several installations through the queue, webhooks to both servers, and one worker SIGKILLed mid-job.

Checks: every record exactly once; never two runs of one (installation, resource) at once (from the
runs table); the shared rate budget held against a sandbox enforcing the same rate per access token
(zero 429s, while two resources of each installation sync side by side); the killed worker's job is
put back in the queue and finished by the other worker; every webhook delivery, whichever server
got it (resends went to the other one), processed exactly once by the workers' drain jobs (D33).

Needs PostgreSQL (skips without it, fails when CI=true). The database is created for the test and
dropped after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.client import HTTPConnection
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from miniapp_sync.definition.loader import load_file
from miniapp_sync.jobs import Work
from miniapp_sync.jobs.procrastinate_queue import ProcrastinateQueue
from miniapp_sync.runtime import Runtime, load_miniapp
from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.store import Inbox, Outbox, Store
from miniapp_sync.testing import temporary_database

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "salla" / "definition.json5"
CLI = str(Path(sys.executable).with_name("miniapp-sync"))
SIGNING = Sandbox(SandboxConfig(orders=12))  # signs deliveries as the sandbox process would (same merchant)
ADMIN = "scale-out admin token"
ENV = {**os.environ, "MINIAPP_SYNC_SECRET_KEY": "scale-out tests", "SALLA_SECRET": SIGNING.config.webhook_secret}
RATE = 10  # the definition's rateLimitPerSecond, and what the sandbox enforces per access token
# 14 pages of 20 per resource: alone, a resource takes 1.4 s at RATE, longer than the sandbox's bucket
# (RATE tokens) can absorb if two workers each spent the whole budget: any such overlap means 429s.
PRODUCTS, CUSTOMERS, TENANTS = 280, 280, ("north", "south", "east")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def settled(process: subprocess.Popen[bytes], port: int) -> Callable[[], bool]:
    """Return a check: has ``process`` started listening on ``port``, or exited?"""
    return lambda: process.poll() is not None or listening(port)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``condition`` (another process's progress) until it returns something true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def database(postgres_admin_url: str) -> Iterator[str]:
    """A fresh database ``miniapp_sync_scale_<random>``, dropped afterwards."""
    with temporary_database(postgres_admin_url, "miniapp_sync_scale") as url:
        yield url


@pytest.fixture
def closing() -> Iterator[contextlib.ExitStack]:
    """Files and stores the test opens, closed at the end whatever happens."""
    with contextlib.ExitStack() as stack:
        yield stack


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes the test starts; whatever still runs at the end is killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


@pytest.fixture
def sandbox(processes: list[subprocess.Popen[bytes]], tmp_path: Path) -> str:
    """The sandbox in its own process, enforcing RATE requests/s per access token."""
    args = ["--products", str(PRODUCTS), "--customers", str(CUSTOMERS), "--orders", "1", "--carts", "1"]
    for _ in range(3):  # the free port may be taken by someone else before the sandbox binds it
        port, log = free_port(), tmp_path / "sandbox.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [CLI, "sandbox", "--port", str(port), *args, "--latency", "0.02", "--rate-limit", str(RATE)],
                stdout=out,
                stderr=out,
            )
        processes.append(process)
        wait_for(settled(process, port), "the sandbox to listen or exit", 30)
        if process.poll() is None:
            return f"http://127.0.0.1:{port}"
    raise AssertionError(f"the sandbox did not start: {log.read_text()[-2000:]}")


def mint_token(base: str) -> str:
    """Get an access token of its own through the sandbox's OAuth code flow (its rate limit is per token)."""
    host = urllib.parse.urlsplit(base).netloc
    redirect = "http://127.0.0.1/callback"
    query = urllib.parse.urlencode(
        {"client_id": "sandbox-client", "redirect_uri": redirect, "response_type": "code", "state": "s"}
    )
    conn = HTTPConnection(host, timeout=10)
    conn.request("GET", f"/oauth2/auth?{query}")
    answer = conn.getresponse()
    answer.read()
    location = answer.getheader("Location") or ""
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["code"][0]
    body = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect,
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
    }
    conn.request("POST", "/oauth2/token", json.dumps(body), {"Content-Type": "application/json"})
    token: str = json.loads(conn.getresponse().read())["access_token"]
    conn.close()
    return token


def definition(folder: Path) -> Path:
    """Products and customers (no details), a page and a commit every 20 records, RATE requests/s."""
    document, _ = load_file(EXAMPLE)
    sync = document["sync"]
    sync["syncConfiguration"].update(rateLimitPerSecond=RATE, batchSize=20)
    for key, resource in sync["resources"].items():
        resource["enabled"] = key in ("products", "customers")
        resource["expandDetails"] = False
        resource["pagination"].update(defaultLimit=20, maxLimit=20)
    # The three tenants stand for three stores but share the sandbox's one merchant: without this,
    # the second install would be refused for holding the first one's storeId (D24). Their
    # deliveries go to per-installation URLs, so nothing needs the store id.
    del document["auth"]["userDetails"]["mapping"]["storeId"]
    del document["webhook"]["tenantExtraction"]
    path = folder / "salla.json"
    path.write_text(json.dumps(document))
    return path


def cli(*args: str) -> str:
    result = subprocess.run([CLI, *args], capture_output=True, text=True, env=ENV, check=False)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def start_server(name: str, database: str, path: Path, folder: Path, processes: list[subprocess.Popen[bytes]]) -> str:
    """Start a `serve` process on the shared store (it enqueues, workers run the jobs); return its URL."""
    for _ in range(3):  # the free port may be taken by someone else before the server binds it
        port, log = free_port(), folder / f"serve-{name}.log"
        args = ["--store", database, "-d", str(path), "--port", str(port), "--config", "webhookSecret=env:SALLA_SECRET"]
        args += ["--admin-token", ADMIN]
        with log.open("wb") as out:
            process = subprocess.Popen([CLI, "serve", *args], stdout=out, stderr=out, env=ENV)
        processes.append(process)
        wait_for(settled(process, port), f"server {name} to listen or exit", 30)
        if process.poll() is None:
            return f"http://127.0.0.1:{port}"
    raise AssertionError(f"server {name} did not start: {log.read_text()[-2000:]}")


WorkerSet = dict[str, tuple[subprocess.Popen[bytes], list[int]]]


def start_workers(
    store: Store,
    database: str,
    path: Path,
    rewrites: list[str],
    folder: Path,
    processes: list[subprocess.Popen[bytes]],
    closing: contextlib.ExitStack,
) -> tuple[WorkerSet, dict[str, Path]]:
    """Start workers a and b (heartbeat 1 s, stalled after 3 s); return each with its Procrastinate ids, and their logs.

    One job at a time each: the two resources of an installation, queued side by side, then run
    on different workers at the same time, so only the shared budget keeps them within the rate.
    """
    logs = {name: folder / f"worker-{name}.log" for name in ("a", "b")}
    workers: WorkerSet = {}

    def registered(count: int) -> Callable[[], list[int] | None]:
        def check() -> list[int] | None:
            with store.database.read("list workers") as conn:
                found = list(conn.execute(text("SELECT id FROM procrastinate_workers ORDER BY id")).scalars())
            return found if len(found) == count else None

        return check

    for name in ("a", "b"):
        log = closing.enter_context(logs[name].open("wb"))
        args = ["--concurrency", "1", "--heartbeat", "1", "--stalled-after", "3", "--name", name]
        process = subprocess.Popen(
            [CLI, "worker", "--store", database, "-d", str(path), *args, *rewrites], stdout=log, stderr=log, env=ENV
        )
        processes.append(process)
        # Each process registers two Procrastinate workers: its slots for every job, and its short lane.
        ids = wait_for(registered(2 * len(workers) + 2), f"worker {name} to register")
        workers[name] = (process, ids[-2:])
    return workers, logs


def send_webhooks(servers: list[str], installations: list[str]) -> int:
    """POST each installation's order.created deliveries, alternating servers, every third resent to the other."""
    sent: list[tuple[str, bytes, dict[str, str]]] = []
    for index, order in enumerate(SIGNING.data["orders"]):
        raw, headers = SIGNING.webhook("order.created", order)
        for number, installation_id in enumerate(installations):
            first = servers[(index + number) % 2]
            sent.append((f"{first}/miniapps/salla/webhooks/{installation_id}", raw, headers))
            if index % 3 == 0:
                other = servers[(index + number + 1) % 2]
                sent.append((f"{other}/miniapps/salla/webhooks/{installation_id}", raw, headers))

    async def post_all() -> list[int]:
        async with aiohttp.ClientSession() as http:

            async def post(url: str, raw: bytes, headers: dict[str, str]) -> int:
                async with http.post(url, data=raw, headers=headers) as response:
                    return response.status

            return await asyncio.gather(*(post(*item) for item in sent))

    statuses = asyncio.run(post_all())
    assert set(statuses) == {200}, statuses
    return len(sent)


def enqueue_through(servers: list[str], installations: list[str]) -> list[str]:
    """Start a sync of each installation through a server's management API; return the jobs' ids."""
    ids = []
    for number, installation_id in enumerate(installations):
        url = f"{servers[number % 2]}/api/installations/{installation_id}/sync"
        request = urllib.request.Request(url, method="POST", headers={"Authorization": f"Bearer {ADMIN}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
            ids += [job["jobId"] for job in json.loads(response.read())["items"]]
    return ids


def enqueue_all(store_url: str, path: Path) -> list[bool]:
    """Enqueue a sync of every tenant (one job per resource), as an API process would; return which were new."""

    async def send() -> list[bool]:
        with Runtime.open(store_url, environ=ENV) as runtime:
            app = runtime.add(load_miniapp(path))
            async with ProcrastinateQueue(Work(runtime), pool_size=2) as queue:
                receipts = []
                for tenant in TENANTS:
                    installation = runtime.installations.find(tenant, app.ns)
                    receipts += await queue.sync(app.ns, installation.id)
                return [not r.duplicate for r in receipts]

    return asyncio.run(send())


def test_two_workers_share_the_queue_and_the_budget_and_survive_a_sigkill(
    tmp_path: Path,
    database: str,
    sandbox: str,
    processes: list[subprocess.Popen[bytes]],
    closing: contextlib.ExitStack,
) -> None:
    path = definition(tmp_path)
    rewrites = ["--rewrite", f"https://api.salla.dev={sandbox}", "--rewrite", f"https://accounts.salla.sa={sandbox}"]
    assert "installed the Procrastinate" in cli("db", "upgrade", "--store", database)
    for tenant in TENANTS:
        token = ["--credential", f"accessToken={mint_token(sandbox)}"]
        cli("install", str(path), "--tenant", tenant, *token, "--store", database, *rewrites)

    store = closing.enter_context(Store.open(database))
    workers, logs = start_workers(store, database, path, rewrites, tmp_path, processes, closing)

    servers = [start_server(name, database, path, tmp_path, processes) for name in ("a", "b")]
    assert all(enqueue_all(database, path))  # six jobs: two resources of three installations
    installation_of = {store.find_installation(t, "salla").id: t for t in TENANTS}  # type: ignore[union-attr]
    sent = send_webhooks(servers, list(installation_of))  # drain jobs run in the short lanes, beside the syncs

    def doing(worker: list[int]) -> list[tuple[str, str]]:
        with store.database.read("list running jobs") as conn:
            rows = conn.execute(
                text(
                    "SELECT args FROM procrastinate_jobs "
                    "WHERE status = 'doing' AND worker_id = ANY(:w) AND task_name = :t"
                ),
                {"w": worker, "t": "miniapp_sync.sync"},
            )
            return [(args["installation_id"], args["resource"]) for (args,) in rows]

    def mid_job(worker: list[int]) -> tuple[str, str] | None:
        for installation_id, resource in doing(worker):
            state = store.get_checkpoint(installation_id, resource)
            if state and not state.get("done"):  # some pages committed, more to come
                return installation_id, resource
        return None

    # While the first installation's pair runs, enqueue everything again, through the servers: each
    # running job takes a twin (it waits for the lock); a job still queued is the answer (asked from
    # an edge, a waiting twin runs as soon as it can, JobQueue.sync(now=True)), so no new job for it.
    wait_for(lambda: doing(workers["a"][1]) and doing(workers["b"][1]), "both workers to run jobs")
    assert {doing(workers["a"][1])[0][0], doing(workers["b"][1])[0][0]} == {
        store.find_installation("north", "salla").id
    }  # type: ignore[union-attr]

    def sync_jobs() -> set[str]:
        with store.database.read("list sync jobs") as conn:
            found = conn.execute(text("SELECT id FROM procrastinate_jobs WHERE task_name = 'miniapp_sync.sync'"))
            return {str(id) for (id,) in found}

    before = sync_jobs()
    answered = enqueue_through(servers, list(installation_of))
    assert len(answered) == 6
    assert len(set(answered) - before) == 2  # the twins of the running pair

    killed, killed_id = workers["a"]
    wait_for(lambda: mid_job(killed_id), "worker a to be mid-job")
    held = set(doing(killed_id))  # a worker may hold several jobs: all of them are lost with it
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()

    def sync_jobs_left() -> int:
        with store.database.read("count jobs") as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM procrastinate_jobs "
                        "WHERE task_name = 'miniapp_sync.sync' AND status IN ('todo', 'doing')"
                    )
                ).scalar_one()
            )

    wait_for(lambda: sync_jobs_left() == 0, "every sync job to finish", timeout=60)
    inbox = Inbox(store)
    orders = len(SIGNING.data["orders"])
    wait_for(lambda: inbox.counts() == {"done": orders * len(TENANTS)}, "every delivery to be processed", 60)
    survivor, _ = workers["b"]
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(timeout=20) == 0  # a graceful stop

    # Every record exactly once, for every installation.
    codes = None
    for installation_id in installation_of:
        for content_type, expected in (("core:product", PRODUCTS), ("core:customer", CUSTOMERS)):
            stored = store.list_records(installation_id, content_type, limit=10_000, include_deleted=True)
            assert len(stored) == expected == len({r.code for r in stored})
            assert not any(r.deleted or r.partial for r in stored)
        mine = {r.code for r in store.list_records(installation_id, "core:product", limit=10_000)}
        assert codes is None or mine == codes
        codes = mine

    # One run at a time per (installation, resource), and every run ended.
    runs: dict[tuple[str, str | None], list[Any]] = {}
    for installation_id in installation_of:
        for run in store.list_runs(installation_id, limit=100):
            runs.setdefault((installation_id, run.resource), []).append(run)
    statuses = {run.status for pair in runs.values() for run in pair}
    assert statuses == {"succeeded", "abandoned"}
    for pair in runs.values():
        pair.sort(key=lambda r: r.started_at)
        for earlier, later in pairwise(pair):
            assert earlier.finished_at is not None
            assert earlier.finished_at <= later.started_at, f"runs of {earlier.resource} overlap"
    abandoned = [r for pair in runs.values() for r in pair if r.status == "abandoned"]
    assert abandoned
    assert {(r.installation_id, r.resource) for r in abandoned} <= held
    for run in abandoned:  # each job the killed worker held was finished by the other one
        assert runs[(run.installation_id, run.resource)][-1].status == "succeeded"
    assert "of a dead worker is" in logs["b"].read_text()  # back in the queue, or covered by a queued twin

    # Every delivery once: resends to the other server were not stored again, nor processed again.
    assert sent > orders * len(TENANTS)
    outbox = Outbox(store)
    for installation_id, tenant in installation_of.items():
        stored = store.list_records(installation_id, "ecommerce:orders", limit=1000)
        assert sorted(r.code for r in stored) == sorted(str(o["id"]) for o in SIGNING.data["orders"])
        assert outbox.count_events(tenant) == orders

    # The rate budget held: the sandbox never answered 429, and the budget lived in PostgreSQL.
    throttled = sum(r.stats[r.resource]["throttled"] for pair in runs.values() for r in pair if r.stats)
    assert throttled == 0
    with store.database.read("list rate budgets") as conn:
        budgets = set(conn.execute(text("SELECT installation_id FROM rate_budgets")).scalars())
    assert budgets == set(installation_of), "the engine did not use the shared rate budget"
