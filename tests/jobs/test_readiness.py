"""``/readyz`` of a scale-out ``serve`` (PostgreSQL + Procrastinate): the queue must answer too (issue 15 item 7)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp
import uvicorn

from miniapp_sync.jobs import Work
from miniapp_sync.jobs.procrastinate_queue import ProcrastinateQueue
from miniapp_sync.jobs.schema import install_job_schema
from miniapp_sync.runtime import Runtime, load_miniapp
from miniapp_sync.server import create_app

from .conftest import KEY, write_definition


async def test_readyz_on_postgresql_says_the_queue_is_not_reachable_until_its_schema_is_installed(
    tmp_path: Path, pg_url: str
) -> None:
    runtime = Runtime.open(pg_url, environ=KEY)  # our tables migrated; the queue's schema not yet installed
    runtime.add(load_miniapp(write_definition(tmp_path)))
    queue = ProcrastinateQueue(Work(runtime), pool_size=2)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(runtime, queue=queue), lifespan="on", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)  # waiting for the server to listen, not testing time
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/readyz"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as response:
                assert response.status == 503
                answer = await response.json()
            assert answer["ready"] is False
            assert answer["reason"].startswith("the job queue is not reachable: ")
            assert "procrastinate_jobs" in answer["reason"]
            install_job_schema(runtime.store.database.engine)
            async with http.get(url) as response:
                assert (response.status, await response.json()) == (200, {"ready": True})
    finally:
        server.should_exit = True
        await task
        runtime.close()
