"""A token bucket per access token, on the injected clock, answering like Salla's rate limiter."""

from __future__ import annotations

import math
from dataclasses import dataclass

from miniapp_sync.clock import Clock

# Float time sums (ten steps of 0.1 is 0.9999999999999999) must not turn a client that spaces
# requests exactly 1/rate apart into one that is a hair too early.
_SLACK = 1e-9


@dataclass
class Decision:
    """The limiter's answer to one request, and the headers that tell the client about it."""

    allowed: bool
    limit: int
    remaining: int
    reset: int  # epoch seconds when the bucket is full again
    retry_after: int  # whole seconds until a request would be allowed; 0 when allowed

    def headers(self) -> dict[str, str]:
        """Return the X-RateLimit-* headers, plus Retry-After on a refusal."""
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class TokenBucket:
    """Holds up to ``capacity`` tokens, refilled at ``rate`` per second; a request takes one."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self._last = now

    def take(self, now: float) -> tuple[bool, float]:
        """Take a token at monotonic time ``now``; return whether it was there and the seconds to wait if not.

        Requests are metered at their arrival, and a request held up on the way (the sandbox's
        own loop) may be metered after a later one: its earlier time refills nothing, and never
        winds the bucket's clock back (which would count the same seconds twice).
        """
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self._last) * self.rate)
        self._last = max(self._last, now)
        if self.tokens >= 1.0 - _SLACK:
            self.tokens = max(0.0, self.tokens - 1.0)
            return True, 0.0
        return False, (1.0 - self.tokens) / self.rate


class RateLimiter:
    """One bucket per access token: capacity max(1, rate), refilled at ``rate`` per second."""

    def __init__(self, rate: float, clock: Clock) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, key: str, at: float | None = None) -> Decision:
        """Spend one request of ``key``'s budget, or refuse it; ``at``: when it arrived (monotonic), if not now."""
        now = self._clock.monotonic() if at is None else at
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.capacity, now)
        allowed, wait = bucket.take(now)
        full_in = (self.capacity - bucket.tokens) / self.rate
        return Decision(
            allowed=allowed,
            limit=math.floor(self.capacity),
            remaining=math.floor(bucket.tokens + _SLACK),
            reset=math.ceil(self._clock.now() + full_in),
            retry_after=0 if allowed else max(1, math.ceil(wait - _SLACK)),
        )
