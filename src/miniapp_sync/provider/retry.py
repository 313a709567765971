"""When to retry a provider call and how long to wait first (D11).

Retried: 429, 500, 502, 503, 504, connection errors, timeouts and bodies cut off mid-stream.
Not retried: every other 4xx (the request itself is wrong; asking again changes nothing).

The wait is capped exponential backoff with full jitter (AWS, "Exponential Backoff and Jitter"):
``uniform(0, min(cap, base * 2**attempt))``. Full jitter spreads the retries of many workers that
failed together. A provider that says how long to wait wins over the formula: ``Retry-After``
(seconds or an HTTP date), then ``X-RateLimit-Remaining: 0`` with ``X-RateLimit-Reset``, up to
``max_retry_after`` (D38): a provider asking for a day (``Retry-After: 86400``) would otherwise
hold a sync, and its worker, for a day; past the cap the attempt fails, saying what was asked.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Final

import aiohttp

__all__ = ["DEFAULT_MAX_RETRY_AFTER", "RETRYABLE_STATUSES", "RetryPolicy", "rate_limit_wait", "retry_after"]

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
DEFAULT_MAX_RETRY_AFTER: Final = 300.0  # seconds (D38)

# X-RateLimit-Reset is epoch seconds for Salla and GitHub, but "seconds from now" for others;
# no epoch time is below 10^9 (2001), and no sane wait is above it.
_EPOCH_THRESHOLD = 1e9

_RETRYABLE_EXCEPTIONS = (
    aiohttp.ClientConnectionError,  # includes ServerDisconnectedError and ServerTimeoutError
    aiohttp.ClientPayloadError,  # the body was cut off: the same transient failure as a disconnect
    TimeoutError,
)


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """Return a header's value, matching its name without regard to case."""
    if not headers:
        return None
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def retry_after(headers: Mapping[str, str] | None, *, now: float) -> float | None:
    """Return the wait a response asks for (Retry-After, else an exhausted X-RateLimit), or None."""
    raw = _header(headers, "Retry-After")
    if raw is not None:
        seconds = _number(raw)
        if seconds is not None:
            return max(0.0, seconds)
        try:
            when = parsedate_to_datetime(raw.strip())
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            if when.tzinfo is None:  # "-0000" dates parse naive; HTTP dates are always UTC
                when = when.replace(tzinfo=UTC)
            return max(0.0, when.timestamp() - now)
    return rate_limit_wait(headers, now=now)


def rate_limit_wait(headers: Mapping[str, str] | None, *, now: float) -> float | None:
    """Return the wait until an exhausted ``X-RateLimit`` budget resets, or None when it is not exhausted."""
    remaining = _number(_header(headers, "X-RateLimit-Remaining"))
    reset = _number(_header(headers, "X-RateLimit-Reset"))
    if remaining is not None and remaining <= 0 and reset is not None:
        return max(0.0, reset - now if reset >= _EPOCH_THRESHOLD else reset)
    return None


class RetryPolicy:
    """Bounded retries with capped, fully jittered exponential backoff; provider hints win up to a cap."""

    def __init__(
        self,
        max_attempts: int = 5,
        base: float = 0.5,
        cap: float = 30.0,
        random: _random.Random | None = None,
        *,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if not max_retry_after >= 0:  # also refuses NaN
            raise ValueError(f"max_retry_after must be 0 or more seconds, got {max_retry_after}")
        self.max_attempts = max_attempts
        self.max_retry_after = max_retry_after
        self.base = base
        self.cap = cap
        self.random = random if random is not None else _random.Random()

    def backoff(self, attempt: int) -> float:
        """Return a jittered wait before retry number ``attempt`` (0 for the first retry)."""
        return self.random.uniform(0.0, min(self.cap, self.base * 2.0 ** min(attempt, 64)))

    def delay(self, attempt: int, *, response_headers: Mapping[str, str] | None = None, now: float) -> float:
        """Return how long to wait before retry number ``attempt`` (0-based); ``now`` is wall time.

        The provider's hint is returned as asked, even past ``max_retry_after``: the caller
        compares, and fails the attempt with the provider's value in its message.
        """
        hinted = retry_after(response_headers, now=now)
        return hinted if hinted is not None else self.backoff(attempt)

    def retryable(self, outcome: int | BaseException) -> bool:
        """Return whether a status code or an exception is worth another attempt."""
        if isinstance(outcome, BaseException):
            return isinstance(outcome, _RETRYABLE_EXCEPTIONS)
        return outcome in RETRYABLE_STATUSES
