"""Group commit: deliveries from many concurrent requests share one inbox transaction (one fsync).

Each request adds its delivery and waits. One flusher takes whatever is waiting (after a short
pause for company, unless the batch is full), commits it (``concurrency`` says where: inline on
SQLite), then answers every waiter; deliveries that arrive during a commit make up the next one.
A request is answered only after the transaction holding its delivery has committed (D25).

The group commit also tells the processor when a burst is on (``busy``), so that processing
steps aside and acknowledgements stay fast.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence

from miniapp_sync.clock import Clock
from miniapp_sync.store import Added, Inbox, InboxEntry
from miniapp_sync.webhooks.concurrency import Call
from miniapp_sync.webhooks.metrics import WebhookMetrics

CROWD_MEMORY = 0.05  # seconds a crowded commit keeps the receiver busy


class GroupCommit:
    """Store deliveries durably, many per transaction; ``add`` returns once its delivery is committed."""

    def __init__(
        self,
        inbox: Inbox,
        clock: Clock,
        *,
        max_batch: int = 512,
        max_delay: float = 0.001,
        metrics: WebhookMetrics | None = None,
        on_commit: Callable[[Sequence[InboxEntry]], None] | None = None,
        call: Call = asyncio.to_thread,
        crowd: int = 16,
        crowd_rate: float = 1500.0,
    ) -> None:
        self._inbox = inbox
        self._clock = clock
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._metrics = metrics
        self._on_commit = on_commit
        self._call = call
        self._waiting: list[tuple[InboxEntry, asyncio.Future[Added]]] = []
        self._arrived = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False
        self._committing = 0  # deliveries in the commit under way
        self._crowd = crowd
        self._crowd_rate = crowd_rate
        self._crowded_at: float | None = None
        self._recent: deque[tuple[float, int]] = deque()  # (started, size) of the last second's commits

    def rate(self) -> float:
        """Return the deliveries committed over the last second."""
        self._forget_before(self._clock.monotonic() - 1.0)
        return float(sum(size for _, size in self._recent))

    def _forget_before(self, horizon: float) -> None:
        while self._recent and self._recent[0][0] < horizon:
            self._recent.popleft()

    def busy(self) -> bool:
        """Return whether a burst is on: more than ``crowd_rate`` deliveries/s, ``crowd`` at a time.

        Crowding alone is not enough (a stall of the loop crowds a commit at any rate), nor is the
        rate (it is what the server achieves, not what senders want). A crowded commit in the last
        moment counts, because a closed loop of senders goes quiet after each commit answers them.
        """
        crowded = len(self._waiting) + self._committing >= self._crowd or (
            self._crowded_at is not None and self._clock.monotonic() - self._crowded_at < CROWD_MEMORY
        )
        return crowded and self.rate() > self._crowd_rate

    async def add(self, entry: InboxEntry) -> Added:
        """Store one delivery; return whether it was new, a resend or a reused key (D26).

        Raises StoreError when the commit fails.
        """
        if self._closing:
            raise RuntimeError("the inbox is closing: no more deliveries are accepted")
        future: asyncio.Future[Added] = asyncio.get_running_loop().create_future()
        self._waiting.append((entry, future))
        if self._flusher is None or self._flusher.done():
            # Started on first use, so an app served without a lifespan still stores deliveries.
            self._flusher = asyncio.create_task(self._flush_forever(), name="inbox group commit")
        self._arrived.set()
        return await future

    async def close(self) -> None:
        """Commit what is waiting, then stop the flusher; later ``add`` calls are refused."""
        self._closing = True
        self._arrived.set()
        if self._flusher is not None:
            await self._flusher

    async def _flush_forever(self) -> None:
        while self._waiting or not self._closing:
            await self._arrived.wait()
            if self._max_delay > 0 and len(self._waiting) < self._max_batch and not self._closing:
                await self._clock.sleep(self._max_delay)
            await self._flush()

    async def _flush(self) -> None:
        batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
        if not self._waiting and not self._closing:
            self._arrived.clear()
        if not batch:
            return
        entries = [entry for entry, _ in batch]
        started = self._clock.monotonic()
        self._committing = len(batch)
        # Pruned here too, not only when the rate is read: a receiver whose processor is another
        # process (serve --processor separate) never reads it, and kept every commit it made.
        self._forget_before(started - 1.0)
        self._recent.append((started, len(batch)))
        if len(batch) >= self._crowd:
            self._crowded_at = started
        try:
            stored = await self._call(self._inbox.add, entries)
        except Exception as exc:  # every waiter learns its delivery was not stored (the server answers 503)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        finally:
            self._committing = 0
        if self._metrics is not None:
            self._metrics.committed(len(batch), self._clock.monotonic() - started)
        for (_, future), fresh in zip(batch, stored, strict=True):
            if not future.done():  # the request may have been cancelled (client gone) meanwhile
                future.set_result(fresh)
        if self._on_commit is not None:
            self._on_commit(entries)
