"""One request budget per installation (D5), honoured exactly: requests go out ``1/rate`` apart.

The limiter is GCRA without burst tolerance ("virtual scheduling"): it keeps the theoretical
arrival time (TAT) of the next grant. A caller takes the slot ``max(now, TAT)``, moves TAT one
interval on, and sleeps until its slot. The slot is reserved before sleeping, so N concurrent
callers get N distinct slots, and sleeping late never shifts later slots, so the achieved rate
stays at ``rate`` while callers keep waiting.

No burst is allowed on purpose: a provider that meters ``rate`` per second with a leaky or token
bucket then never sees two of our requests closer than its refill interval, so it never answers
429 because of us, whatever its bucket size.

Pace, never catch up: when the process stalls (CPU contention, a long synchronous step), every
caller whose slot passed meanwhile wakes up at once when it ends, and would send at once: a burst
as long as the stall, which a provider's bucket answers with 429s. So a grant also keeps one
interval after the previous grant's real time, less ``slack`` for the event loop's ordinary
lateness: callers a stall bunched go out one interval apart from its end, later slots are pushed
back behind them, and the slots the stall swallowed are budget lost to it, never made up.
"""

from __future__ import annotations

import math
from typing import Final

from miniapp_sync.clock import Clock

__all__ = ["RateLimiter", "limiter_for"]

# How late a slot may still be used: half an interval, so grants stay at least half an interval
# apart; never under 5 ms (at high rates an event loop's ordinary lateness would waste slots),
# never over 250 ms (at low rates a provider's bucket tolerates less than half its interval).
MIN_SLACK: Final = 0.005
MAX_SLACK: Final = 0.25


def slack_of(interval: float) -> float:
    """Return how late a slot of a budget granting every ``interval`` seconds may still be used."""
    return min(MAX_SLACK, max(MIN_SLACK, interval / 2))


class RateLimiter:
    """Grant requests exactly ``1/rate`` seconds apart on the injected clock."""

    def __init__(self, rate: float, *, clock: Clock) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ValueError(f"rate must be a positive number of requests per second, got {rate!r}")
        self.rate = float(rate)
        self.interval = 1.0 / self.rate
        self.slack = slack_of(self.interval)
        self.clock = clock
        self._tat = -math.inf
        self._paused_until = -math.inf
        self._granted = -math.inf  # the real time of the latest grant

    async def acquire(self) -> float:
        """Wait for this caller's slot; return the time it was granted on the monotonic clock."""
        while True:
            now = self.clock.monotonic()
            slot = max(now, self._tat)
            self._tat = slot + self.interval
            if slot > now:
                await self.clock.sleep(slot - now)
                now = self.clock.monotonic()
            # A pause that arrived while we slept covers a slot reserved before it: that slot is
            # abandoned and the caller queues again behind the pause.
            if slot < self._paused_until:
                continue
            if now >= self._granted + self.interval - self.slack:
                self._granted = now
                return now
            # A stall bunched us with the previous grant: go one interval after it, and push the
            # later reservations behind us (set before sleeping: callers woken with us see it).
            grant = self._granted = max(self._granted + self.interval, self._paused_until)
            self._tat = max(self._tat, grant + self.interval)
            await self.clock.sleep(grant - now)
            if grant >= self._paused_until:
                return grant

    def pause_until(self, monotonic_time: float) -> None:
        """Grant nothing before ``monotonic_time`` (a 429 or Retry-After pushes the whole budget back)."""
        self._paused_until = max(self._paused_until, monotonic_time)
        self._tat = max(self._tat, monotonic_time)


_LIMITERS: dict[str, RateLimiter] = {}


def limiter_for(key: str, rate: float, clock: Clock) -> RateLimiter:
    """Return the process-wide limiter of ``key`` (an installation), replacing it if the rate or clock changed."""
    old = _LIMITERS.get(key)
    if old is not None and old.rate == float(rate) and old.clock is clock:
        return old
    limiter = _LIMITERS[key] = RateLimiter(rate, clock=clock)
    if old is not None and old.clock is clock:
        # Keep the reservations and pause already made, so a rate change never opens a burst.
        limiter._tat, limiter._paused_until = old._tat, old._paused_until
    return limiter
