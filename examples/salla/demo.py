"""The demo behind `make demo`: the Salla example against the bundled sandbox, into SQLite.

It starts the sandbox provider on 127.0.0.1, then runs the real `miniapp-sync` commands a user
would type — validate, install (API-key flow with pasted tokens), sync, records — against a
fresh store in .demo/, printing each command before its output. Then it starts `serve`, sends
it signed Salla webhooks, and shows the records change and the trigger events fire.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.testing import sandbox_thread

ROOT = Path(__file__).resolve().parents[2]
DEFINITION = "examples/salla/definition.json5"
STORE = ".demo/store.sqlite"


def run(*args: str) -> None:
    """Print a miniapp-sync command line, then run it; stop the demo if it fails."""
    print(f"\n$ miniapp-sync {shlex.join(args)}", flush=True)
    exe = Path(sys.executable).with_name("miniapp-sync")
    code = subprocess.run([str(exe), *args], cwd=ROOT, check=False, env={**os.environ, "COLUMNS": "110"}).returncode
    if code != 0:
        raise SystemExit(code)


def main() -> None:
    shutil.rmtree(ROOT / ".demo", ignore_errors=True)
    # The sandbox enforces the definition's own rateLimitPerSecond (10/s), as Salla's budget would.
    config = SandboxConfig(products=60, customers=90, orders=60, carts=20, rate_limit=10)
    with sandbox_thread(config) as (sandbox, url):
        demo(sandbox, url, config)


def demo(sandbox: Sandbox, url: str, config: SandboxConfig) -> None:
    """Run the commands against the sandbox at ``url``."""
    os.environ["MINIAPP_SYNC_SECRET_KEY"] = "demo key: not for production"
    rewrites = ["--rewrite", f"https://api.salla.dev={url}", "--rewrite", f"https://accounts.salla.sa={url}"]
    print(f"sandbox provider (Salla-shaped) on {url}, enforcing {config.rate_limit:.0f} requests/s")
    run("validate", DEFINITION)
    run(
        "install", DEFINITION, "--tenant", "demo-store", "--store", STORE, *rewrites,
        "--credential", f"accessToken={config.access_token}",
        "--credential", f"refreshToken={config.refresh_token}",
    )  # fmt: skip
    run("sync", DEFINITION, "--tenant", "demo-store", "--store", STORE, *rewrites)
    run("records", "--tenant", "demo-store", "--type", "ecommerce:orders", "--limit", "3", "--store", STORE)
    print(f"\nThe sandbox answered {sandbox.stats.responses.get(429, 0)} requests with 429 (rate limit held).")
    webhooks(sandbox, config, rewrites)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def webhooks(sandbox: Sandbox, config: SandboxConfig, rewrites: list[str]) -> None:
    """Serve the MiniApp, send it signed deliveries, and show what they changed."""
    port = free_port()
    args = ["serve", "-d", DEFINITION, "--store", STORE, "--port", str(port), *rewrites]
    args += ["--config", f"webhookSecret={config.webhook_secret}"]  # Salla's app-wide signing secret
    print(f"\n$ miniapp-sync {shlex.join(args)} &", flush=True)
    exe = Path(sys.executable).with_name("miniapp-sync")
    server = subprocess.Popen([str(exe), *args], cwd=ROOT)
    try:
        url = f"http://127.0.0.1:{port}/miniapps/salla/webhooks"
        for _ in range(200):  # wait for the server to listen
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        order = sandbox.data["orders"][0]
        sandbox.mutate("orders", order["id"], status="canceled")  # a synced order changes status
        (new_order,) = sandbox.add("orders")  # a new order after the sync
        (new_customer,) = sandbox.add("customers")
        sends = (("order.status.updated", order), ("order.created", new_order), ("customer.created", new_customer))
        for event, record in sends:
            body, headers = sandbox.webhook(event, record)
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=10) as answer:
                print(f"POST {event} (signed X-Salla-Signature) → {answer.status} {answer.read().decode()}")
        time.sleep(1.5)  # the processor applies the inbox in the background
        run("records", "--tenant", "demo-store", "--type", "ecommerce:orders", "--limit", "2", "--store", STORE)
        run("events", "--tenant", "demo-store", "--store", STORE)
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
