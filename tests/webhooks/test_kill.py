"""``miniapp-sync serve`` killed with SIGKILL under load: every acknowledged delivery survives, processed once."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import orjson

from miniapp_sync.runtime import Runtime
from miniapp_sync.sandbox import Sandbox
from miniapp_sync.store import Inbox, Outbox, Store

from .conftest import EXAMPLE, KEY, SANDBOX, SECRET

CLI = str(Path(sys.executable).with_name("miniapp-sync"))
DELIVERIES = 400
KILL_AFTER = 120  # acknowledged deliveries


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(store: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    args = [CLI, "serve", "-d", str(EXAMPLE), "--store", str(store), "--port", str(port)]
    with log.open("ab") as stderr:
        process = subprocess.Popen(
            [*args, "--config", f"webhookSecret={SECRET}"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, **KEY},
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # waiting for another process to listen, not testing time
        assert process.poll() is None, log.read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    raise AssertionError("serve did not start listening")


async def load(url: str, deliveries: list[tuple[bytes, dict[str, str]]], process: subprocess.Popen[bytes]) -> set[str]:
    """Send deliveries 16 at a time; SIGKILL the server once KILL_AFTER are acknowledged; return the acked ids."""
    acked: set[str] = set()
    queue = list(reversed(deliveries))

    async def worker(http: aiohttp.ClientSession) -> None:
        while queue:
            raw, headers = queue.pop()
            try:
                async with http.post(url, data=raw, headers=headers) as response:
                    await response.read()
                    if response.status == 200:
                        acked.add(str(orjson.loads(raw)["data"]["id"]))
            except (aiohttp.ClientError, OSError):
                continue  # the server is gone: this one was never acknowledged
            if len(acked) >= KILL_AFTER and process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(worker(http) for _ in range(16)))
    return acked


def test_sigkill_under_load_loses_no_acknowledged_delivery_and_processes_each_once(tmp_path: Path) -> None:
    store_path, log = tmp_path / "store.sqlite", tmp_path / "serve.log"
    with Runtime.open(str(store_path), environ=KEY) as runtime:
        installation = runtime.store.save_installation(
            "acme", "salla", credentials=runtime.installations.vault.encrypt({}),
            metadata={"storeId": str(SANDBOX.merchant_id)}, user_input={}, status="connected",
        )  # fmt: skip
    sandbox = Sandbox(SANDBOX)
    orders = sandbox.data["orders"]
    deliveries = [
        sandbox.webhook("order.created", {**orders[i % len(orders)], "id": 5_000_000 + i}) for i in range(DELIVERIES)
    ]
    port = free_port()
    url = f"http://127.0.0.1:{port}/miniapps/salla/webhooks"
    process = start(store_path, port, log)
    acked = asyncio.run(load(url, deliveries, process))
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert KILL_AFTER <= len(acked) < DELIVERIES

    with Store.open(str(store_path)) as store:
        stored = {r.transaction_id for r in Inbox(store).list(limit=10_000)}
    assert acked <= stored  # durable before acknowledged

    process = start(store_path, port, log)
    try:
        forged = {**deliveries[0][1], "X-Salla-Signature": "ab" * 32, "Authorization": "Bearer leaked-token-value"}
        asyncio.run(_post(url, deliveries[0][0], forged))
        asyncio.run(_post(url, orjson.dumps({"event": "order.created", "merchant": 1, "data": {}}), {}))
        with Store.open(str(store_path)) as store:
            inbox = Inbox(store)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # watching the restarted server catch up
                counts = inbox.counts()
                if not counts.get("pending") and not counts.get("processing"):
                    break
                time.sleep(0.05)
            rows = [r for r in inbox.list(limit=10_000) if r.event == "order.created" and r.installation_id]
            assert {r.status for r in rows} == {"done"}
            assert {r.transaction_id for r in rows} == stored
            events = Outbox(store).events("acme", limit=10_000)
            assert sorted(e.inbox_id for e in events) == sorted(r.id for r in rows)  # exactly once each
            assert store.count_records(installation.id, "ecommerce:orders") == len(rows)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)

    text = log.read_text()
    for secret in (SECRET, "ab" * 32, "leaked-token-value", *(h["X-Salla-Signature"] for _, h in deliveries[:50])):
        assert secret not in text


async def _post(url: str, raw: bytes, headers: dict[str, str]) -> None:
    async with aiohttp.ClientSession() as http, http.post(url, data=raw, headers=headers) as response:
        await response.read()
