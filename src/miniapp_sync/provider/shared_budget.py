"""One request budget per installation shared by every worker process and machine (D5, D34).

The same GCRA as ``ratelimit.RateLimiter`` ("virtual scheduling", no burst), with its state in a
PostgreSQL row per installation (``rate_budgets``) instead of process memory. Reserving slots is
one atomic ``UPDATE … RETURNING``: the row lock serialises workers, each gets distinct slots from
``max(now, TAT, paused_until)`` on and moves TAT past them, then sleeps locally until its slot.

Time comes from the database's clock (``clock_timestamp()``), not the worker's: machines' clocks
drift apart, the database is the one clock every worker shares. A worker only turns the reserved
slot into a local delay (``slot - database now``), which no clock skew can distort. Tests may pass
their own time source instead.

At high rates a round trip per request would cost more than the request's share of the budget,
so a reservation takes up to ``AHEAD`` seconds of slots at once (at 10 requests/s: one slot, at
1,000/s: 32). Slots a process reserved but did not use are lost to the budget (at most ``AHEAD``
seconds of it), never handed out twice.

Pace, never catch up (as ``ratelimit``): a slot this process wakes up for more than ``slack`` late
(it stalled) is abandoned and the budget reserved again from now, behind every other worker's
slots, so a stall never ends in a burst. One more round trip, only after a stall.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from typing import Final

from sqlalchemy import Engine, text

from miniapp_sync.clock import Clock
from miniapp_sync.provider.ratelimit import RateLimiter

__all__ = ["LimiterFactory", "SharedRateLimiter", "shared_limiters"]

LimiterFactory = Callable[[str, float, Clock], RateLimiter]  # (installation id, rate, clock): limiter_for's shape
TimeSource = Callable[[], float]  # epoch seconds; None means the database's clock

AHEAD: Final = 0.05  # seconds of budget one reservation may take
MAX_AHEAD: Final = 32  # slots one reservation may take

# The row is created on first use; TAT 0 (1970) means "free now".
_ENSURE: Final = text(
    "INSERT INTO rate_budgets (installation_id, tat, paused_until) VALUES (:key, 0, 0) "
    "ON CONFLICT (installation_id) DO NOTHING"
)
_NOW: Final = "COALESCE(CAST(:now AS double precision), extract(epoch FROM clock_timestamp()))"
_RESERVE: Final = text(
    f"WITH clock AS (SELECT {_NOW} AS now) "
    "UPDATE rate_budgets SET tat = GREATEST(tat, clock.now, paused_until) + :count * :interval "
    "FROM clock WHERE installation_id = :key "
    "RETURNING tat - :count * :interval AS slot, clock.now AS now"
)
_PAUSE: Final = text(
    f"WITH clock AS (SELECT {_NOW} + :delay AS until) "
    "UPDATE rate_budgets SET paused_until = GREATEST(paused_until, clock.until), tat = GREATEST(tat, clock.until) "
    "FROM clock WHERE installation_id = :key"
)
_PAUSED: Final = text("SELECT paused_until FROM rate_budgets WHERE installation_id = :key")
# A reservation must not wait for its WAL record to reach the disk: every request takes one, and
# flushing each would serialise all workers on fsync. Losing the last reservations in a database
# crash only moves TAT back a little, while every worker's requests fail anyway.
_NO_FLUSH: Final = text("SET LOCAL synchronous_commit TO OFF")


class SharedRateLimiter(RateLimiter):
    """Grant an installation's requests ``1/rate`` apart across every process sharing the database."""

    def __init__(
        self, engine: Engine, key: str, rate: float, *, clock: Clock, time_source: TimeSource | None = None
    ) -> None:
        super().__init__(rate, clock=clock)
        self.engine = engine
        self.key = key
        self.time_source = time_source
        self.ahead = max(1, min(MAX_AHEAD, int(self.rate * AHEAD)))
        self._ensured = False
        self._slots: list[float] = []  # reserved, not yet handed out (a heap: earliest first)
        self._clock_at = (0.0, 0.0)  # (budget clock, local monotonic) when the last reservation returned

    def _now(self) -> float | None:
        return None if self.time_source is None else self.time_source()

    def reserve(self, count: int = 1) -> tuple[float, float]:
        """Take the next ``count`` slots; return (the first slot, now), epoch seconds on the budget's clock."""
        with self.engine.begin() as conn:
            conn.execute(_NO_FLUSH)
            if not self._ensured:
                conn.execute(_ENSURE, {"key": self.key})
            params = {"key": self.key, "interval": self.interval, "count": count, "now": self._now()}
            row = conn.execute(_RESERVE, params).one()
        self._ensured = True
        return float(row.slot), float(row.now)

    def paused_until(self) -> float:
        """Return when the budget's current pause ends (epoch seconds on the budget's clock)."""
        with self.engine.connect() as conn:
            return float(conn.execute(_PAUSED, {"key": self.key}).scalar_one())

    async def _slot(self) -> tuple[float, float]:
        """Return a slot of this process's and the budget's clock now, reserving more when none is left."""
        while not self._slots:
            first, now = await asyncio.to_thread(self.reserve, self.ahead)
            self._clock_at = (now, self.clock.monotonic())
            for n in range(self.ahead):
                heapq.heappush(self._slots, first + n * self.interval)
        budget_now, local_then = self._clock_at
        return heapq.heappop(self._slots), budget_now + (self.clock.monotonic() - local_then)

    async def acquire(self) -> float:
        """Wait for this caller's slot; return the slot's time on the local monotonic clock."""
        while True:
            slot, now = await self._slot()
            local = self.clock.monotonic() + (slot - now)
            if slot <= now:
                if now - slot <= self.slack:
                    return local
                continue  # a held slot that passed while this process stalled: pace, never catch up
            await self.clock.sleep(slot - now)
            # A pause that another worker (or this one) set while we slept covers a slot reserved
            # before it: that slot is abandoned, with the others held here, and the caller queues
            # again behind the pause. So is a slot woken up for too late (the process stalled).
            late = self.clock.monotonic() - local
            if late <= self.slack and slot >= await asyncio.to_thread(self.paused_until):
                return local
            self._slots.clear()

    def pause_until(self, monotonic_time: float) -> None:
        """Grant nothing before ``monotonic_time`` (local monotonic) to any worker of this installation."""
        delay = max(0.0, monotonic_time - self.clock.monotonic())
        # Blocking on purpose: this runs on a 429 or an exhausted-budget hint, rarely, and every
        # worker must see the pause before this caller's own backoff ends.
        with self.engine.begin() as conn:
            if not self._ensured:
                conn.execute(_ENSURE, {"key": self.key})
            conn.execute(_PAUSE, {"key": self.key, "delay": delay, "now": self._now()})
        self._ensured = True
        self._slots.clear()  # held slots are before the pause: the budget is reserved again after it


def shared_limiters(engine: Engine, *, time_source: TimeSource | None = None) -> LimiterFactory:
    """Return a ``limiter_for``-shaped factory whose limiters share their budget through ``engine``'s database."""
    made: dict[str, SharedRateLimiter] = {}

    def limiter(key: str, rate: float, clock: Clock) -> RateLimiter:
        old = made.get(key)
        if old is not None and old.rate == float(rate) and old.clock is clock:
            return old
        made[key] = SharedRateLimiter(engine, key, rate, clock=clock, time_source=time_source)
        return made[key]

    return limiter
