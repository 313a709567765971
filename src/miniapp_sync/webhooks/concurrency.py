"""How the webhook jobs share the event loop: store calls inline, in a thread, or on a thread of their own.

On SQLite a store call is CPU plus at most one fsync, about a millisecond. When the loop also
runs the processor (``serve --processor inline``, an app in a test's process), the loop is busy
with CPU and handing each call to a thread cost more than that in GIL handoffs (measured 2.5x
fewer deliveries/s under load), so calls run in the event loop. The price: while another thread
or process holds the store's write lock, the loop waits for it too.

When the processor is another process (``serve``'s default on SQLite), the receiver's loop only
receives, and its inbox commit waits for the writer lock the processor holds (up to ~8 ms a
batch) and for its own fsync: run inline, the loop accepted and parsed nothing for ~40% of wall
time at 500 deliveries/s. There the commit runs on ``OwnThread``: one thread that only waits on
the lock and the disk while the loop goes on forming the next batch (issue #17 item 4). Its
price is CPU: arrivals no longer pile up behind a blocked loop, so batches are smaller and
commits more frequent (~1 ms of CPU each, mostly SQLAlchemy and the fsync): at 500/s on a
loaded machine, 2-3x the commits and ~40% more server CPU a delivery, for ack latency several
times lower. A lower ``sys.setswitchinterval`` showed no difference within the noise.

On PostgreSQL a call waits on the network, so it runs in a thread. Workers that call inline
yield to the loop between batches themselves.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, Protocol, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class Call(Protocol):
    """Run a blocking store call from asyncio (``asyncio.to_thread``'s signature)."""

    async def __call__(self, function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T: ...


async def inline(function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a store call in the event loop itself."""
    return function(*args, **kwargs)


def caller(inline_calls: bool) -> Call:
    """Return how store calls are run from asyncio: inline (SQLite, as the backend says) or in a thread."""
    return inline if inline_calls else asyncio.to_thread


class OwnThread:
    """Run store calls one at a time on one thread of this object's own, started by the first call.

    Not the default executor: a commit there could queue behind other blocking calls (a metrics
    scrape, a readiness check) that may themselves wait for the writer lock. One thread also
    keeps the calls in the order they were made. ``close`` ends the thread; a later call starts
    another.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._executor: ThreadPoolExecutor | None = None
        self._made = threading.Lock()

    async def __call__(self, function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        run = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)  # as to_thread does
        return await asyncio.get_running_loop().run_in_executor(self._thread(), run)

    def _thread(self) -> ThreadPoolExecutor:
        with self._made:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
            return self._executor

    def close(self) -> None:
        """End the thread once the call under way, if any, returns (without waiting for it here)."""
        with self._made:
            executor, self._executor = self._executor, None
        if executor is not None:
            # Not waiting keeps the loop free; the call's own caller still awaits its outcome.
            executor.shutdown(wait=False)
