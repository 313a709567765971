"""How the webhook jobs share the event loop: store calls inline or in a thread.

On SQLite a store call is CPU plus at most one fsync, about a millisecond: handing it to a
thread cost more than that in GIL handoffs (measured 2.5x fewer deliveries/s under load), so
it runs in the event loop. The price: while another thread holds the store's write lock (a bulk
sync batch), the loop waits for it too. On PostgreSQL a call waits on the network, so it runs
in a thread. Workers that call inline yield to the loop between batches themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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
