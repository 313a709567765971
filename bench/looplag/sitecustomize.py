"""Benchmark-only: record how late a process's event loop wakes, when ``MINIAPP_SYNC_BENCH_LOOP_LAG`` names a folder.

bench/tenants.py puts this folder first on the ``PYTHONPATH`` of the processes it measures, so
Python imports this module at start-up (``sitecustomize``). It wraps ``asyncio.run``: beside the
process's main coroutine, a task sleeps ``EVERY`` seconds over and over, and writes how much later
than asked each sleep ended (the loop's lag: the callback or blocking call that held it) to
``<folder>/lag-<pid>.txt``, one ``epoch-seconds lag-seconds`` line a sample, flushed each second
so a killed process keeps its samples. Nothing of the project imports it.

To find what lags a loop, ``MINIAPP_SYNC_BENCH_SLOW_CALLBACKS=<seconds>`` also runs it in
asyncio's debug mode, which logs each callback that held it longer (named by the task and where
its coroutine stopped next) to ``$TMPDIR/miniapp-sync-slow-<pid>.log``, kept after the run.
Debug mode costs CPU: not for figures.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
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
    slow = os.environ.get("MINIAPP_SYNC_BENCH_SLOW_CALLBACKS")
    if slow:
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = float(slow)
        handler = logging.FileHandler(Path(tempfile.gettempdir()) / f"miniapp-sync-slow-{os.getpid()}.log")
        logging.getLogger("asyncio").addHandler(handler)
        logging.getLogger("asyncio").setLevel(logging.WARNING)
    sampler = asyncio.create_task(_sample(Path(_folder) / f"lag-{os.getpid()}.txt"))
    try:
        return await main
    finally:
        sampler.cancel()


def _measured_run(main: Any, **kwargs: Any) -> Any:
    return _run(_with_sampler(main), **kwargs)


if _folder:
    asyncio.run = _measured_run
