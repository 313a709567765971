"""Benchmark-only: record how late a process's event loop wakes, when ``MINIAPP_SYNC_BENCH_LOOP_LAG`` names a folder.

bench/tenants.py puts this folder first on the ``PYTHONPATH`` of the processes it measures, so
Python imports this module at start-up (``sitecustomize``). It wraps ``asyncio.run``: beside the
process's main coroutine, a task sleeps ``EVERY`` seconds over and over, and writes how much later
than asked each sleep ended (the loop's lag: the callback or blocking call that held it) to
``<folder>/lag-<pid>.txt``, one ``epoch-seconds lag-seconds`` line a sample, flushed each second
so a killed process keeps its samples. Nothing of the project imports it.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

EVERY = 0.01  # seconds between samples: a lag under it is not seen

_folder = os.environ.get("MINIAPP_SYNC_BENCH_LOOP_LAG")
_run = asyncio.run


async def _sample(path: Path) -> None:
    with path.open("a") as out:
        flushed = time.monotonic()
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(EVERY)
            lag = time.perf_counter() - asked - EVERY
            out.write(f"{time.time():.3f} {lag:.6f}\n")
            if time.monotonic() - flushed >= 1.0:
                out.flush()
                flushed = time.monotonic()


async def _with_sampler(main: Any) -> Any:
    assert _folder is not None
    sampler = asyncio.create_task(_sample(Path(_folder) / f"lag-{os.getpid()}.txt"))
    try:
        return await main
    finally:
        sampler.cancel()


def _measured_run(main: Any, **kwargs: Any) -> Any:
    return _run(_with_sampler(main), **kwargs)


if _folder:
    asyncio.run = _measured_run
