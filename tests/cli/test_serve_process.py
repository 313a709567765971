"""``serve`` as a supervisor runs it: a real process, started, hammered from the first moment, stopped by SIGTERM.

A SIGTERM is a clean stop: exit status 0, every acknowledged delivery stored, the store closed
(its WAL checkpointed into the database file). Connections that arrive while ``serve`` starts
wait in the listening socket's backlog and are answered once it is ready: none is reset; the
processor child does not hold the listening socket.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from miniapp_sync.listening import listen
from miniapp_sync.runtime import Runtime
from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.store import Inbox

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "examples" / "salla" / "definition.json5")
KEY = "serve process tests"
CONFIG = SandboxConfig(products=2, customers=2, orders=6, carts=1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(home: Path, port: int, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``serve`` on ``port`` over ``home``'s store (salla's webhook secret set); kill it if a test left it."""
    env = {
        **os.environ, "PYTHONUNBUFFERED": "1", "MINIAPP_SYNC_SECRET_KEY": KEY,
        "SALLA_WEBHOOK_SECRET": CONFIG.webhook_secret,
    }  # fmt: skip
    command = [
        sys.executable, "-m", "miniapp_sync", "serve", "-d", EXAMPLE, "--store", str(home / "store.sqlite"),
        "--port", str(port), "--config", "webhookSecret=env:SALLA_WEBHOOK_SECRET", *extra,
    ]  # fmt: skip
    with (home / "serve.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=home)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def announced(home: Path, process: subprocess.Popen[bytes]) -> None:
    """Wait for serve's "serving" line (waiting for a process to start, not testing time)."""
    deadline = time.monotonic() + 60
    while "serving salla on" not in (home / "serve.log").read_text(errors="replace"):
        assert process.poll() is None, (home / "serve.log").read_text(errors="replace")
        assert time.monotonic() < deadline, "serve did not start within 60 s"
        time.sleep(0.05)


def seed(home: Path) -> str:
    runtime = Runtime.open(str(home / "store.sqlite"), environ={"MINIAPP_SYNC_SECRET_KEY": KEY})
    try:
        vault = runtime.installations.vault
        return runtime.store.save_installation(
            "acme", "salla", credentials=vault.encrypt({"accessToken": CONFIG.access_token}),
            metadata={"storeId": str(CONFIG.merchant_id)}, user_input={}, status="connected",
        ).id  # fmt: skip
    finally:
        runtime.close()


def test_sigterm_stops_serve_with_exit_0_its_store_closed_and_every_acknowledged_delivery_kept(
    tmp_path: Path,
) -> None:
    seed(tmp_path)
    sandbox = Sandbox(CONFIG)  # not started: it only signs the deliveries its store would send
    deliveries = [sandbox.webhook("order.created", order) for order in sandbox.data["orders"]]
    port = free_port()
    with serve(tmp_path, port) as process:
        announced(tmp_path, process)
        for raw, headers in deliveries:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/miniapps/salla/webhooks", raw, headers)
            with urllib.request.urlopen(request, timeout=30) as answer:
                assert answer.status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, (tmp_path / "serve.log").read_text(errors="replace")
    wal = tmp_path / "store.sqlite-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # closed: the last connection checkpointed the WAL
    runtime = Runtime.open(str(tmp_path / "store.sqlite"), environ={"MINIAPP_SYNC_SECRET_KEY": KEY})
    try:
        rows = Inbox(runtime.store).list(limit=100)
    finally:
        runtime.close()
    assert len(rows) == len(deliveries)
    assert not [r for r in rows if r.status == "processing"]  # nothing left half-claimed


def test_the_listening_socket_is_not_passed_on_to_a_program_serve_would_exec() -> None:
    with listen("127.0.0.1", 0) as sock:
        assert not sock.get_inheritable()


def listening_inode(port: int) -> str:
    """Return the inode of the socket listening on 127.0.0.1:``port`` (Linux: /proc/net/tcp, state 0A)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":
            return fields[9]
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def socket_inodes(pid: int) -> set[str]:
    """Return the inodes of the sockets a process holds."""
    inodes: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except FileNotFoundError:  # closed between the listing and the read: the process is busy
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:[") : -1])
    return inodes


def test_connections_from_the_moment_serve_binds_wait_and_are_answered_none_reset(tmp_path: Path) -> None:
    port = free_port()
    outcomes: Counter[str] = Counter()
    done = threading.Event()

    def hammer() -> None:
        while not done.is_set():
            try:
                client = socket.create_connection(("127.0.0.1", port), timeout=60)
            except ConnectionRefusedError:
                outcomes["not yet bound"] += 1
                time.sleep(0.002)  # the port is not bound yet: knock again (not testing time)
                continue
            with client:
                try:
                    client.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    answer = b""
                    while chunk := client.recv(65536):
                        answer += chunk
                    outcomes["answered" if answer.startswith(b"HTTP/1.1 200") else f"other: {answer[:40]!r}"] += 1
                except ConnectionResetError:
                    outcomes["reset"] += 1

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        with serve(tmp_path, port) as process:
            announced(tmp_path, process)
            found = re.search(r"inbox processor: pid (\d+)", (tmp_path / "serve.log").read_text(errors="replace"))
            assert found, "serve did not say its processor's pid"
            inode = listening_inode(port)
            assert inode in socket_inodes(process.pid)
            assert inode not in socket_inodes(int(found[1]))  # the child let go of it: it never accepts
            deadline = time.monotonic() + 60
            while outcomes["answered"] < 200 and time.monotonic() < deadline:
                time.sleep(0.05)  # let the hammer go on past start-up (waiting, not testing time)
            done.set()
            for thread in threads:
                thread.join(60)
            process.send_signal(signal.SIGTERM)
            assert process.wait(60) == 0
    finally:
        done.set()
    assert outcomes["answered"] >= 200, outcomes
    assert set(outcomes) <= {"answered", "not yet bound"}, outcomes  # none reset, none answered otherwise
