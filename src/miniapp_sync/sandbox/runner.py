"""Run a sandbox until interrupted: the body of ``miniapp-sync sandbox`` and ``python -m miniapp_sync.sandbox``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from miniapp_sync.sandbox.config import SandboxConfig
from miniapp_sync.sandbox.server import Sandbox


async def serve_forever(
    config: SandboxConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    echo: Callable[[str], None] = print,
) -> None:
    """Serve a sandbox until cancelled, after telling ``echo`` where it is and how to use it."""
    sandbox = Sandbox(config)
    cfg = sandbox.config
    await sandbox.start(host, port)
    try:
        counts = f"{cfg.products} products, {cfg.customers} customers, {cfg.orders} orders, {cfg.carts} carts"
        echo(f"Salla sandbox ({counts}, seed {cfg.seed}) at {sandbox.base_url}")
        echo(f"  API:            {sandbox.api_url}  (Authorization: Bearer {cfg.access_token})")
        echo(f"  OAuth:          {sandbox.base_url}/oauth2/auth, /oauth2/token, /oauth2/user/info")
        echo(f"  client:         {cfg.client_id} / {cfg.client_secret}")
        echo(f"  webhook secret: {cfg.webhook_secret}")
        if cfg.tenants > 1:
            last_access, _ = cfg.tokens(cfg.tenants - 1)
            echo(
                f"  stores:         {cfg.tenants} (store k: merchant {cfg.merchant_id}+k, token {cfg.access_token}-k;"
                f" store 0 the plain token; the last: {last_access})"
            )
        await asyncio.Event().wait()
    finally:
        await sandbox.stop()


def run(host: str = "127.0.0.1", port: int = 8765, **config: Any) -> None:
    """Serve a sandbox in the foreground until Ctrl-C; ``config`` holds SandboxConfig fields."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(SandboxConfig(**config), host, port))
