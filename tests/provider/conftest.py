"""A real aiohttp provider on 127.0.0.1 per test, a FakeClock, and clients wired to both.

Tests set ``provider.handler`` to an async ``(request) -> web.Response`` (or ``provider.catalog``
to a ``Catalog`` that paginates a list of records), then call the client; ``provider.requests``
records what the provider received.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from multidict import MultiDict

from miniapp_sync.provider import ProviderClient, RateLimiter, RetryPolicy
from miniapp_sync.testing import FakeClock

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """Answer with ``body`` encoded by orjson."""
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json", headers=headers)


@dataclass
class Received:
    """What the provider saw of one request."""

    method: str
    path: str
    raw_path: str
    query: MultiDict[str]
    headers: dict[str, str]


@dataclass
class Catalog:
    """A list endpoint at ``/products`` that paginates ``records`` in one style, as a provider would."""

    records: list[dict[str, Any]]
    style: str = "page"
    envelope: bool = True  # {"data": [...], "pagination": {...}} or a bare array
    total: str | None = "body"  # where the total goes: "body", "header" or None
    total_pages: bool = False
    max_size: int | None = None  # the provider's silent cap on the page size
    link_header: bool = False  # "next" style: Link header instead of a body URL
    relative_links: bool = False
    ignore_paging: bool = False  # a broken provider that always serves the first page

    def serve(self, request: web.Request, base: str) -> web.Response:
        query = request.query
        size = int(query.get("per_page", "10"))
        if self.max_size is not None:
            size = min(size, self.max_size)
        start = 0
        if not self.ignore_paging:
            if self.style == "page":
                start = (int(query.get("page", "1")) - 1) * size
            elif self.style == "offset":
                start = int(query.get("offset", "0"))
            elif self.style == "cursor":
                start = int(query.get("cursor", "c0")[1:])
            else:
                start = int(query.get("after", "0"))
        items = self.records[start : start + size]
        end = start + len(items)
        more = end < len(self.records)
        headers: dict[str, str] = {}
        extra: dict[str, Any] = {"total": len(self.records)} if self.total == "body" else {}
        if self.total_pages:
            extra["totalPages"] = math.ceil(len(self.records) / size)
        if self.total == "header":
            headers["X-WP-Total"] = str(len(self.records))
        if self.style == "cursor":
            extra["next_cursor"] = f"c{end}" if more else None
        if self.style == "next" and more:
            link = f"/products?after={end}&per_page={size}"
            link = link if self.relative_links else base + link
            if self.link_header:
                prev = f'<{base}/products?after=0&per_page={size}>; rel="prev"'
                headers["Link"] = f'{prev}, <{link}>; rel="next"'
            else:
                extra["next"] = link
        if not self.envelope:
            return json_response(items, headers=headers)
        return json_response({"status": 200, "data": items, "pagination": extra}, headers=headers)


@dataclass
class FakeProvider:
    """The provider side of a test: a handler to answer with and what it received."""

    url: str = ""
    handler: Handler | None = None
    catalog: Catalog | None = None
    requests: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # set at teardown: frees waiting handlers
    in_flight: int = 0
    max_in_flight: int = 0

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            Received(request.method, request.path, request.raw_path, request.query.copy(), dict(request.headers))
        )
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.handler is not None:
                return await self.handler(request)
            assert self.catalog is not None, "set provider.handler or provider.catalog"
            return self.catalog.serve(request, self.url)
        finally:
            self.in_flight -= 1


@pytest.fixture
async def provider() -> AsyncIterator[FakeProvider]:
    fake = FakeProvider()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.dispatch)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.url = f"http://{host}:{port}"
    yield fake
    fake.release.set()
    await runner.cleanup()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


SEED = 7


@pytest.fixture
async def make_client(provider: FakeProvider, clock: FakeClock) -> AsyncIterator[Callable[..., ProviderClient]]:
    """Build clients for the test's provider; keyword arguments override the defaults."""
    made: list[ProviderClient] = []

    def make(**overrides: Any) -> ProviderClient:
        options: dict[str, Any] = {
            "base_url": provider.url,
            "headers": {},
            "timeout_ms": 5_000,
            "limiter": RateLimiter(1_000, clock=clock),
            "retry": RetryPolicy(random=random.Random(SEED)),
            "clock": clock,
        }
        client = ProviderClient(**{**options, **overrides})
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


class SteppedClock(FakeClock):
    """A FakeClock on which concurrent sleepers wake in deadline order, each at its own deadline.

    FakeClock moves time on by each sleep as it is asked, so N tasks sleeping at once wake N sleeps
    later, as after a stall. Here time moves to the earliest deadline once every task that can run
    has run; ``advance`` is a stall: the sleepers it passes wake at its end, all at once.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        super().__init__(start)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._stepping: asyncio.Task[None] | None = None

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        woken = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.monotonic() + max(0.0, seconds), next(self._order), woken))
        if self._stepping is None or self._stepping.done():
            self._stepping = asyncio.create_task(self._step())
        await woken

    async def _step(self) -> None:
        while self._sleepers:
            for _ in range(5):  # every task that can run does, and says when it wakes
                await asyncio.sleep(0)
            deadline, _, woken = heapq.heappop(self._sleepers)
            if deadline > self.monotonic():
                self.advance(deadline - self.monotonic())
            if not woken.done():
                woken.set_result(None)
