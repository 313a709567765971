"""The demo behind `make demo`: the Salla example against the bundled sandbox, into SQLite.

It starts the sandbox provider on 127.0.0.1, then runs the real `miniapp-sync` commands a user
would type — validate, install (API-key flow with pasted tokens, then the initial sync), records —
against a fresh store in .demo/, printing each command before its output. Then it starts `serve`, sends
it signed Salla webhooks, and shows the records change and the trigger events fire.

Last, the guide-only definition (examples/salla-guide: what a developer writes from the docs
alone, without tenantExtraction and with transactionId { path: '$.data.id' }) is installed in a
store of its own and sent an order and three status updates through the shared URL.

With ``--console`` (``make console``) it then serves the demo store with the operator console on,
prints the console's URL and a login token, and runs until Ctrl-C.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.testing import sandbox_thread

ROOT = Path(__file__).resolve().parents[2]
DEFINITION = "examples/salla/definition.json5"
STORE = ".demo/store.sqlite"
GUIDE = "examples/salla-guide/definition.json5"
GUIDE_STORE = ".demo/guide.sqlite"


def run(*args: str) -> None:
    """Print a miniapp-sync command line, then run it; stop the demo if it fails."""
    print(f"\n$ miniapp-sync {shlex.join(args)}", flush=True)
    exe = Path(sys.executable).with_name("miniapp-sync")
    code = subprocess.run([str(exe), *args], cwd=ROOT, check=False, env={**os.environ, "COLUMNS": "110"}).returncode
    if code != 0:
        raise SystemExit(code)


def main(argv: list[str]) -> None:
    shutil.rmtree(ROOT / ".demo", ignore_errors=True)
    # The sandbox enforces the definition's own rateLimitPerSecond (10/s), as Salla's budget would.
    config = SandboxConfig(products=60, customers=90, orders=60, carts=20, rate_limit=10)
    with sandbox_thread(config) as (sandbox, url):
        demo(sandbox, url, config)
        if "--console" in argv:
            console(config, url)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def console(config: SandboxConfig, url: str) -> None:
    """Serve the demo store with the console on, until Ctrl-C (the sandbox stays up, so "sync now" works)."""
    token = secrets.token_urlsafe(18)
    os.environ["MINIAPP_SYNC_ADMIN_TOKEN"] = token  # through the environment: ps shows no token (D30)
    rewrites = ["--rewrite", f"https://api.salla.dev={url}", "--rewrite", f"https://accounts.salla.sa={url}"]
    with serving(DEFINITION, STORE, config, rewrites) as (_, base):
        print(f"\nThe operator console: {base}/console/")
        print(f"Log in with the admin token: {token}")
        print("Press Ctrl-C to stop.", flush=True)
        signal.signal(signal.SIGTERM, _interrupt)  # stopped by a supervisor: stop serve too, as Ctrl-C does
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\nstopped")


def demo(sandbox: Sandbox, url: str, config: SandboxConfig) -> None:
    """Run the commands against the sandbox at ``url``."""
    os.environ["MINIAPP_SYNC_SECRET_KEY"] = "demo key: not for production"
    # Tokens reach the CLI through the environment, so no secret is printed with the commands (D30).
    os.environ["SANDBOX_ACCESS_TOKEN"], os.environ["SANDBOX_REFRESH_TOKEN"] = config.access_token, config.refresh_token
    rewrites = ["--rewrite", f"https://api.salla.dev={url}", "--rewrite", f"https://accounts.salla.sa={url}"]
    print(f"sandbox provider (Salla-shaped) on {url}, enforcing {config.rate_limit:.0f} requests/s")
    run("validate", DEFINITION)
    # The lifecycle: the install runs the initial sync of every enabled resource, with progress.
    run(
        "install", DEFINITION, "--tenant", "demo-store", "--store", STORE, *rewrites,
        "--credential", "accessToken=env:SANDBOX_ACCESS_TOKEN",
        "--credential", "refreshToken=env:SANDBOX_REFRESH_TOKEN",
    )  # fmt: skip
    run("records", "--tenant", "demo-store", "--type", "ecommerce:orders", "--limit", "3", "--store", STORE)
    print(f"\nThe sandbox answered {sandbox.stats.responses.get(429, 0)} requests with 429 (rate limit held).")
    webhooks(sandbox, config, rewrites)
    guide(sandbox, config, rewrites)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST a raw delivery; return the HTTP status."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def order_status(code: object, tenant: str = "demo-store", store: str = STORE) -> str:
    """Return an order's stored status and customer link, as `records --format json` shows them."""
    exe = Path(sys.executable).with_name("miniapp-sync")
    args = ["records", "--tenant", tenant, "--type", "ecommerce:orders", "--limit", "1000", "--store", store]
    done = subprocess.run([str(exe), *args, "--format", "json"], cwd=ROOT, check=True, capture_output=True, text=True)
    record = next((r for r in json.loads(done.stdout)["items"] if r["code"] == str(code)), None)
    if record is None:
        return "not stored"
    return f"status {record['data'].get('status')!r}, customerCode {record['data'].get('customerCode')!r}"


@contextmanager
def serving(
    definition: str, store: str, config: SandboxConfig, rewrites: list[str]
) -> Iterator[tuple[Callable[..., None], str]]:
    """Run `serve` for ``definition``; yield a function that POSTs a delivery to the shared URL and waits, and its URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Salla's app-wide signing secret is operator config; env: keeps it off the command line (D30).
    environ = {**os.environ, "SALLA_WEBHOOK_SECRET": config.webhook_secret}
    args = ["serve", "-d", definition, "--store", store, "--port", str(port), *rewrites]
    args += ["--config", "webhookSecret=env:SALLA_WEBHOOK_SECRET"]
    print(f"\n$ miniapp-sync {shlex.join(args)} &", flush=True)
    exe = Path(sys.executable).with_name("miniapp-sync")
    server = subprocess.Popen([str(exe), *args], cwd=ROOT, env=environ)
    try:
        deadline = time.monotonic() + 60  # a busy machine can take a while to start it
        while True:  # wait for the server to listen
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"serve did not start (exit status {server.poll()})") from None
                time.sleep(0.05)

        def send(label: str, body: bytes, headers: dict[str, str], note: str = "") -> None:
            status = post(f"{base}/miniapps/salla/webhooks", body, headers)
            print(f"  POST /miniapps/salla/webhooks  {label:<24} → {status}{note}")
            # 200 means stored durably; the processor applies it just after: wait until the inbox is idle.
            idle = [f'miniapp_sync_inbox_rows{{status="{state}"}} 0.0' for state in ("pending", "processing")]
            for _ in range(600):
                if all(line in urllib.request.urlopen(f"{base}/metrics").read().decode() for line in idle):
                    break
                time.sleep(0.05)

        yield send, base
    finally:
        server.terminate()
        server.wait(10)


def webhooks(sandbox: Sandbox, config: SandboxConfig, rewrites: list[str]) -> None:
    """Serve the MiniApp, send it signed deliveries, and show what they changed."""
    with serving(DEFINITION, STORE, config, rewrites) as (send, _):
        print("\nSalla sends signed webhooks (X-Salla-Signature: hex HMAC-SHA256 of the raw body):")
        (placed,) = sandbox.add("orders")  # a new order after the sync
        created = sandbox.webhook("order.created", sandbox.mutate("orders", placed["id"], status="under_review"))
        send("order.created", *created)
        print(f"    order {placed['id']}: {order_status(placed['id'])}")
        shipped = sandbox.mutate("orders", placed["id"], status="shipped")
        send("order.status.updated", *sandbox.webhook("order.status.updated", shipped))
        print(f"    order {placed['id']}: {order_status(placed['id'])}")
        (person,) = sandbox.add("customers")
        send("customer.created", *sandbox.webhook("customer.created", person))
        send("order.created (resent)", *created, "  (same transaction id and body: not processed again)")
        send("order.created (forged)", created[0], {**created[1], "X-Salla-Signature": "0" * 64})
        run("events", "--tenant", "demo-store", "--store", STORE)
        run("deliveries", "--status", "rejected", "--store", STORE)  # the forged one: why it was refused


def guide(sandbox: Sandbox, config: SandboxConfig, rewrites: list[str]) -> None:
    """The guide-only definition: an order and three status updates through the shared URL."""
    print("\nThe same store, with a definition written from the MiniApps guide alone (no tenantExtraction,")
    print("transactionId { path: '$.data.id' }):")
    run("validate", GUIDE)
    run(
        "install", GUIDE, "--tenant", "guide-store", "--store", GUIDE_STORE, *rewrites,
        "--credential", "accessToken=env:SANDBOX_ACCESS_TOKEN",
        "--credential", "refreshToken=env:SANDBOX_REFRESH_TOKEN",
    )  # fmt: skip
    with serving(GUIDE, GUIDE_STORE, config, rewrites) as (send, _):
        (placed,) = sandbox.add("orders")
        created = sandbox.webhook("order.created", sandbox.mutate("orders", placed["id"], status="under_review"))
        send("order.created", *created)
        for slug in ("in_progress", "shipped", "delivered"):
            updated = sandbox.webhook("order.status.updated", sandbox.mutate("orders", placed["id"], status=slug))
            send("order.status.updated", *updated, f"  ({slug}: same data.id, another body)")
        send("order.status.updated (resent)", *updated, "  (same key, same body: a resend)")
        print(f"    order {placed['id']}: {order_status(placed['id'], 'guide-store', GUIDE_STORE)}")
        run("events", "--tenant", "guide-store", "--store", GUIDE_STORE)


if __name__ == "__main__":
    main(sys.argv[1:])
