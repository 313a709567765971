"""Fixtures for bulk sync: the sandbox provider, a runtime on a real SQLite file, derived definitions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from miniapp_sync.definition.lint import lint
from miniapp_sync.definition.loader import load_file
from miniapp_sync.mapping.plan import compile_plan, vocabulary
from miniapp_sync.network import Rewrites
from miniapp_sync.runtime import MiniApp, Runtime
from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.store import Installation
from miniapp_sync.testing import FakeClock

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "salla" / "definition.json5"
KEY = {"MINIAPP_SYNC_SECRET_KEY": "sync tests"}


def derive(change: Callable[[dict[str, Any]], None] | None = None) -> MiniApp:
    """Load the example, let ``change`` edit the raw document, and compile it (it must stay valid)."""
    document, _ = load_file(EXAMPLE)
    if change is not None:
        change(document)
    definition, findings = lint(document, vocabulary=vocabulary())
    errors = [f.render() for f in findings if f.severity == "error"]
    assert definition is not None, errors
    assert not errors, errors
    return MiniApp(definition, compile_plan(definition))


class World:
    """A sandbox and a runtime pointed at it, with a connected installation of the example."""

    def __init__(self, sandbox: Sandbox, runtime: Runtime, clock: FakeClock) -> None:
        self.sandbox = sandbox
        self.runtime = runtime
        self.clock = clock

    async def install(self, app: MiniApp, tenant: str = "acme") -> Installation:
        self.runtime.add(app)
        return await self.runtime.installations.install(
            app.definition,
            tenant,
            credentials={
                "accessToken": self.sandbox.config.access_token,
                "refreshToken": self.sandbox.config.refresh_token,
            },
        )

    def fresh(self, installation: Installation) -> Installation:
        found = self.runtime.store.get_installation(installation.id)
        assert found is not None
        return found


def open_runtime(path: Path, base_url: str, clock: FakeClock | None = None, **kwargs: Any) -> Runtime:
    """Open a runtime on a SQLite file, with the example's provider origins rewritten to ``base_url``."""
    return Runtime.open(
        str(path),
        clock=clock,
        rewrites=Rewrites({"https://accounts.salla.sa": base_url, "https://api.salla.dev": base_url}),
        environ=KEY,
        **kwargs,
    )


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(products=45, customers=12, orders=14, carts=4)


@pytest.fixture
async def world(tmp_path: Path, sandbox_config: SandboxConfig) -> AsyncIterator[World]:
    # The engine runs on a FakeClock: backoff and rate spacing advance it instead of sleeping.
    clock = FakeClock()
    sandbox = Sandbox(sandbox_config)
    base = await sandbox.start()
    runtime = open_runtime(tmp_path / "store.sqlite", base, clock)
    runtime.installations.configure(
        "salla", {"client_id": sandbox.config.client_id, "client_secret": sandbox.config.client_secret}
    )
    try:
        yield World(sandbox, runtime, clock)
    finally:
        runtime.close()
        await sandbox.stop()
