"""Fixtures for jobs: a PostgreSQL database of the session's own, the sandbox, and a stack per queue kind.

PostgreSQL is the root conftest's ``postgres_admin_url`` (without a reachable server the tests that
need it skip, unless CI=true, where they fail). The session creates ``miniapp_sync_jobs_<random>``
there and drops it at the end; each test that needs PostgreSQL gets a fresh schema in it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy.engine import make_url

from miniapp_sync.clock import Clock
from miniapp_sync.definition.loader import load_file
from miniapp_sync.jobs import JobQueue, JobRetry, LocalQueue, Work
from miniapp_sync.jobs.procrastinate_queue import TASKS, Liveness, ProcrastinateQueue
from miniapp_sync.jobs.schema import install_job_schema
from miniapp_sync.network import Rewrites
from miniapp_sync.runtime import MiniApp, Runtime, load_miniapp
from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.store import Installation
from miniapp_sync.store.database import MIGRATIONS
from miniapp_sync.testing import temporary_database

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "salla" / "definition.json5"
KEY = {"MINIAPP_SYNC_SECRET_KEY": "jobs tests"}
QUICK = JobRetry(attempts=3, base=0.05, cap=0.2)  # retries within a test's patience


def migration_head() -> str:
    """Return the newest revision of the store's migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def write_definition(folder: Path, change: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Write the example as JSON with products and customers only, no details and a budget that does not bind."""
    document, _ = load_file(EXAMPLE)
    sync = document["sync"]
    sync["syncConfiguration"].update(rateLimitPerSecond=1000, batchSize=50)
    for key, resource in sync["resources"].items():
        resource["enabled"] = key in ("products", "customers")
        resource["expandDetails"] = False
    if change is not None:
        change(document)
    path = folder / f"definition-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(document))
    return path


@pytest.fixture(scope="session")
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """Return the URL of this session's PostgreSQL database."""
    with temporary_database(postgres_admin_url, "miniapp_sync_jobs") as url:
        yield url


@pytest.fixture
def pg_url(postgres_url: str) -> str:
    """Create an empty schema of the test's own and return a URL whose search_path puts everything there."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """Run the sandbox provider on this test's loop."""
    provider = Sandbox(SandboxConfig(products=75, customers=30, orders=5, carts=2))
    await provider.start()
    try:
        yield provider
    finally:
        await provider.stop()


class Stack:
    """A runtime on one kind of store, its queue, and a connected installation of the example."""

    def __init__(self, kind: str, runtime: Runtime, queue: JobQueue, app: MiniApp, installation: Installation):
        self.kind = kind
        self.runtime = runtime
        self.queue = queue
        self.app = app
        self.installation = installation
        self.work = queue.work
        self._worker: asyncio.Task[None] | None = None

    def start(self, concurrency: int = 3, *, periodic: bool = False) -> None:
        """Run a worker in the background (Procrastinate's always runs the periodic tasks; the local one if asked)."""
        if isinstance(self.queue, ProcrastinateQueue):
            job = self.queue.run_worker(concurrency=concurrency, name=f"test-{self.kind}", signals=False)
        else:
            assert isinstance(self.queue, LocalQueue)
            job = self.queue.run_worker(concurrency=concurrency, schedule=periodic)
        self._worker = asyncio.create_task(job)

    async def stop(self) -> None:
        """Stop the worker (Procrastinate lets running jobs finish)."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None

    async def settled(self, timeout: float = 20.0) -> None:
        """Wait until no job is queued or running (periodic housekeeping aside)."""
        async with asyncio.timeout(timeout):
            if isinstance(self.queue, LocalQueue):
                await self.queue.join()
                return
            assert isinstance(self.queue, ProcrastinateQueue)
            ours = set(TASKS.values())
            while True:
                status = await self.queue.status()
                if not any(c["task"] in ours and c["status"] in ("todo", "doing") for c in status.counts):
                    return
                await asyncio.sleep(0.05)  # watching the database, not testing time


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (polling the loop) until ``condition()`` holds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def open_stack(
    kind: str,
    tmp_path: Path,
    sandbox: Sandbox,
    store_url: str,
    *,
    clock: Clock | None = None,
    change: Callable[[dict[str, Any]], None] | None = None,
) -> Stack:
    """Open a runtime on ``store_url`` with the queue of ``kind`` and install the example (``change``d) for acme."""
    runtime = Runtime.open(
        store_url,
        rewrites=Rewrites({"https://accounts.salla.sa": sandbox.base_url, "https://api.salla.dev": sandbox.base_url}),
        environ=KEY,
    )
    app = runtime.add(load_miniapp(write_definition(tmp_path, change)))
    runtime.installations.configure("salla", {"client_id": "sandbox-client", "client_secret": "sandbox-secret"})
    installation = await runtime.installations.install(
        app.definition, "acme", credentials={"accessToken": sandbox.config.access_token}
    )
    work = Work(runtime)
    queue: JobQueue
    if kind == "local":
        queue = LocalQueue(work, retry=QUICK, clock=clock)
    else:
        install_job_schema(runtime.store.database.engine)
        queue = ProcrastinateQueue(work, retry=QUICK, liveness=Liveness(heartbeat=0.5, stalled_after=2, poll=0.05))
    await queue.open()
    return Stack(kind, runtime, queue, app, installation)


@pytest.fixture(params=["local", "procrastinate"])
async def stack(request: pytest.FixtureRequest, tmp_path: Path, sandbox: Sandbox) -> AsyncIterator[Stack]:
    """A stack on SQLite with the in-process queue, and one on PostgreSQL with Procrastinate."""
    store_url = str(tmp_path / "store.sqlite") if request.param == "local" else request.getfixturevalue("pg_url")
    opened = await open_stack(request.param, tmp_path, sandbox, store_url)
    try:
        yield opened
    finally:
        await opened.stop()
        await opened.queue.close()
        opened.runtime.close()
