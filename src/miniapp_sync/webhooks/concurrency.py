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
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, Protocol, TypeVar

from miniapp_sync.store import Store

P = ParamSpec("P")
T = TypeVar("T")


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
