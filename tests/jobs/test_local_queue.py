"""What only the in-process queue promises: webhook processing is never starved by syncs."""

from __future__ import annotations

from pathlib import Path

from miniapp_sync.jobs import LocalQueue
from miniapp_sync.sandbox import Sandbox

from .conftest import open_stack, until


async def test_an_inbox_drain_runs_while_every_worker_is_busy_syncing(tmp_path: Path, sandbox: Sandbox) -> None:
    stack = await open_stack("local", tmp_path, sandbox, str(tmp_path / "store.sqlite"))
    assert isinstance(stack.queue, LocalQueue)
    drained: list[str] = []

    async def drain(ns: str, installation_id: str) -> float | None:
        drained.append(installation_id)
        return None

    stack.work.drain = drain
    try:
        sandbox.hang_next(1, 30.0, path_prefix="/admin/v2/products")  # the sync's first request hangs
        await stack.queue.sync("salla", stack.installation.id, "products")
        stack.start(concurrency=1)
        await until(lambda: stack.queue.running == [f"sync:{stack.installation.id}:products"])
        await stack.queue.drain_inbox("salla", stack.installation.id)
        await until(lambda: drained == [stack.installation.id])
        assert stack.queue.running == [f"sync:{stack.installation.id}:products"]  # still syncing meanwhile
    finally:
        await stack.stop()
        await stack.queue.close()
        stack.runtime.close()
