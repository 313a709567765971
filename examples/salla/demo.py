"""The demo behind `make demo`: the Salla example against the bundled sandbox, into SQLite.

It starts the sandbox provider on 127.0.0.1, then runs the real `miniapp-sync` commands a user
would type — validate, install (API-key flow with pasted tokens), sync, records — against a
fresh store in .demo/, printing each command before its output.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
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


if __name__ == "__main__":
    main()
