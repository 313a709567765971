"""Public test kit: a clock that tests move by hand, and the sandbox provider on a thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from miniapp_sync.sandbox import Sandbox, SandboxConfig


class FakeClock:
    """A Clock whose ``sleep()`` advances time instantly and records how long it was asked to wait."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._monotonic = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        self._now += seconds
        self._monotonic += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)  # still yield, so concurrent tasks interleave as they would


@contextlib.contextmanager
def sandbox_thread(config: SandboxConfig | None = None) -> Iterator[tuple[Sandbox, str]]:
    """Run the sandbox provider on its own event loop in a thread (for synchronous callers: CLI tests, the demo)."""
    ready = threading.Event()
    stop = threading.Event()
    started: list[tuple[Sandbox, str]] = []

    async def serve() -> None:
        sandbox = Sandbox(config)
        started.append((sandbox, await sandbox.start()))
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.02)
        await sandbox.stop()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the sandbox did not start within 10 s")
    try:
        yield started[0]
    finally:
        stop.set()
        thread.join(10)
