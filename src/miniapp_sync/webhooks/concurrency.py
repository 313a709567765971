"""How the webhook workers share the event loop: store calls inline or in a thread, and waiting.

On SQLite a store call is CPU plus at most one fsync, about a millisecond: handing it to a
thread cost more than that in GIL handoffs (measured 2.5x fewer deliveries/s under load), so
it runs in the event loop. The price: while another thread holds the store's write lock (a bulk
sync batch), the loop waits for it too. On PostgreSQL a call waits on the network, so it runs
in a thread. Workers that call inline yield to the loop between batches themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, Protocol, TypeVar

from miniapp_sync.clock import Clock
from miniapp_sync.errors import MiniAppSyncError
from miniapp_sync.store import Store

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger("miniapp_sync.webhooks")


class Call(Protocol):
    """Run a blocking store call from asyncio (``asyncio.to_thread``'s signature)."""

    async def __call__(self, function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T: ...


async def inline(function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a store call in the event loop itself."""
    return function(*args, **kwargs)


def caller(store: Store) -> Call:
    """Return how calls to ``store`` are run from asyncio: inline on SQLite, in a thread elsewhere."""
    return inline if store.dialect == "sqlite" else asyncio.to_thread


async def wait_first(*waits: Coroutine[Any, Any, Any]) -> None:
    """Wait until the first of several awaitables finishes; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def run_until_stopped(
    step: Callable[[], Awaitable[float | None]],
    *,
    wake: asyncio.Event,
    stop: asyncio.Event,
    clock: Clock,
    backoff: float,
    what: str,
) -> None:
    """Run ``step`` again and again until ``stop`` is set: when ``wake`` is set or the time it returned comes.

    A step that fails is retried ``backoff`` seconds later: an unreachable store, or a bug, must not
    end the work for good (what waits is kept in the store).
    """
    while not stop.is_set():
        wake.clear()
        try:
            next_due = await step()
        except MiniAppSyncError as exc:
            log.error("%s paused: %s", what, exc)
            next_due = clock.now() + backoff
        except Exception:
            log.exception("%s failed unexpectedly; retrying", what)
            next_due = clock.now() + backoff
        delay = None if next_due is None else max(0.0, next_due - clock.now())
        timer = [clock.sleep(delay)] if delay is not None else []
        await wait_first(wake.wait(), stop.wait(), *timer)
