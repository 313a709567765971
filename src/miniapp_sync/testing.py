"""Public test kit: a clock that tests move by hand, the sandbox provider on a thread, a POST endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from miniapp_sync.sandbox import Sandbox, SandboxConfig

if TYPE_CHECKING:
    from aiohttp import web


@contextlib.asynccontextmanager
async def post_endpoint(
    handle: Callable[[web.Request], Awaitable[web.StreamResponse]], path: str = "/hooks"
) -> AsyncIterator[str]:
    """Serve ``handle`` for POSTs to ``path`` on 127.0.0.1 (a trigger subscriber, say); yield its URL."""
    from aiohttp import web

    app = web.Application()
    app.router.add_post(path, handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}{path}"
    finally:
        await runner.cleanup()


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


@contextlib.contextmanager
def temporary_database(admin_url: str, prefix: str = "miniapp_sync_test") -> Iterator[str]:
    """Create a fresh PostgreSQL database ``<prefix>_<random>`` on ``admin_url``'s server; drop it after.

    Tests and benchmarks get a database of their own, so parallel runs and reruns never share tables.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:  # FORCE: whoever is still connected
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
