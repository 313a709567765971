"""What the sandbox saw: requests by route, responses by status, and the request rate over time."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

# Clients that space requests exactly 1/rate apart land on window edges; float sums such as ten
# steps of 0.1 fall a hair short of 1.0, which must not count an extra request in the window.
_EDGE = 1e-9


@dataclass
class SandboxStats:
    """Counters of one sandbox; ``timeline`` and ``max_per_second`` cover API requests only."""

    requests: int = 0
    by_route: Counter[str] = field(default_factory=Counter)  # 'GET /admin/v2/products/{id}'
    responses: Counter[int] = field(default_factory=Counter)
    rate_limited: int = 0  # 429s from the rate limiter (injected 429s count only in responses)
    max_per_second: int = 0  # most API requests that arrived within any one second
    timeline: list[float] = field(default_factory=list)  # clock.monotonic() of each API request
    by_tenant: Counter[int] = field(default_factory=Counter)  # authorised API requests per store
    limited_by_tenant: Counter[int] = field(default_factory=Counter)  # the limiter's 429s per store
    _window: deque[float] = field(default_factory=deque, repr=False, compare=False)

    def record(self, route: str, at: float, *, api: bool) -> None:
        """Count a request arriving at monotonic time ``at``."""
        self.requests += 1
        self.by_route[route] += 1
        if not api:
            return
        self.timeline.append(at)
        window = self._window
        window.append(at)
        while window and window[0] <= at - 1.0 + _EDGE:
            window.popleft()
        self.max_per_second = max(self.max_per_second, len(window))

    def authorised(self, tenant: int, *, limited: bool) -> None:
        """Count an API request that store ``tenant``'s token authorised (``limited``: refused with 429)."""
        self.by_tenant[tenant] += 1
        if limited:
            self.rate_limited += 1
            self.limited_by_tenant[tenant] += 1

    def answered(self, status: int) -> None:
        """Count a response."""
        self.responses[status] += 1

    @property
    def too_many_requests(self) -> int:
        """Return how many 429 responses were sent, injected or not."""
        return self.responses[429]

    def reset(self) -> None:
        """Forget everything counted so far."""
        self.requests = self.rate_limited = self.max_per_second = 0
        self.by_route.clear()
        self.by_tenant.clear()
        self.limited_by_tenant.clear()
        self.responses.clear()
        self.timeline.clear()
        self._window.clear()
