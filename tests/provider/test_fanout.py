"""Detail fan-out: in flight follows the budget and the provider's latency, up to the operator's cap (D10)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, Callable
from typing import Any

import pytest
from aiohttp import web

from miniapp_sync.provider import ProviderClient, fetch_details
from miniapp_sync.provider.details import with_details, without_details
from miniapp_sync.provider.fanout import DEFAULT_MAX_IN_FLIGHT, FanOut, in_flight_for
from miniapp_sync.provider.pagination import Page
from miniapp_sync.provider.ratelimit import RateLimiter
from miniapp_sync.testing import FakeClock

from .conftest import json_response
from .test_details import resource

MakeClient = Callable[..., ProviderClient]


def test_in_flight_fills_the_budget_at_the_observed_latency() -> None:
    # Little's law: 50 req/s at 20 ms needs one in flight; a quarter more and one for jitter.
    assert in_flight_for(50, 0.020, 64) == 3
    assert in_flight_for(1_000, 0.020, 64) == 26
    assert in_flight_for(10, 0.5, 64) == 8


def test_a_budget_that_never_binds_gets_the_operators_cap() -> None:
    assert in_flight_for(100_000, 0.020, 64) == 64
    assert in_flight_for(math.inf, 0.020, 16) == 16
    assert in_flight_for(100_000, 0.020, DEFAULT_MAX_IN_FLIGHT) == DEFAULT_MAX_IN_FLIGHT


def test_before_any_answer_a_few_go_out_and_never_fewer_than_one() -> None:
    assert in_flight_for(1_000, None, 64) == 4
    assert in_flight_for(1_000, None, 2) == 2
    assert in_flight_for(0.1, 0.0, 64) == 1


def test_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        FanOut(10, lambda: None, cap=0)


async def test_the_gate_lets_through_as_many_as_the_latency_calls_for_and_more_once_it_grows() -> None:
    latency: list[float | None] = [0.020]
    gate = FanOut(100, lambda: latency[0], cap=64)  # 100 req/s × 20 ms → 4 in flight
    first_done, release = asyncio.Event(), asyncio.Event()
    through = 0

    async def caller(done: asyncio.Event) -> None:
        nonlocal through
        async with gate.slot():
            through += 1
            await done.wait()

    tasks = [asyncio.create_task(caller(first_done if i == 0 else release)) for i in range(20)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert (through, gate.in_flight) == (4, 4)
    latency[0] = 0.100  # the provider slowed down: 100 req/s now needs 14 in flight
    first_done.set()  # the next answer makes the gate look again
    for _ in range(5):
        await asyncio.sleep(0)
    assert (through, gate.in_flight) == (15, 14)
    release.set()
    await asyncio.gather(*tasks)
    assert (through, gate.peak) == (20, 14)


async def test_a_leaving_caller_hands_its_place_to_the_longest_waiter_only() -> None:
    gate = FanOut(math.inf, lambda: 0.0, cap=2)
    done = [asyncio.Event() for _ in range(5)]
    order: list[int] = []

    async def caller(k: int) -> None:
        async with gate.slot():
            order.append(k)
            await done[k].wait()

    tasks = [asyncio.create_task(caller(k)) for k in range(5)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert (order, gate.in_flight) == ([0, 1], 2)
    done[1].set()
    for _ in range(3):
        await asyncio.sleep(0)
    assert (order, gate.in_flight) == ([0, 1, 2], 2)  # one place freed, one waiter through, in arrival order
    for event in done:
        event.set()
    await asyncio.gather(*tasks)
    assert (order, gate.in_flight, gate.peak) == ([0, 1, 2, 3, 4], 0, 2)


async def three_callers_on_one_place() -> tuple[FanOut, asyncio.Event, list[int], list[asyncio.Task[None]]]:
    """Start callers 0, 1, 2 on a gate of one place: 0 holds it until ``release`` is set, 1 and 2 queue.

    Returns the gate, the release, the callers that got through (in order) and their tasks.
    """
    gate = FanOut(math.inf, lambda: 0.0, cap=1)
    release = asyncio.Event()
    through: list[int] = []

    async def caller(k: int) -> None:
        async with gate.slot():
            through.append(k)
            await release.wait()

    tasks = [asyncio.create_task(caller(k)) for k in range(3)]
    for _ in range(3):
        await asyncio.sleep(0)
    return gate, release, through, tasks


async def test_a_waiter_cancelled_in_the_queue_neither_holds_a_place_nor_blocks_those_behind_it() -> None:
    gate, release, through, tasks = await three_callers_on_one_place()
    tasks[1].cancel()  # queued behind the holder
    release.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
    assert isinstance(results[1], asyncio.CancelledError)
    assert (through, gate.in_flight) == ([0, 2], 0)


async def test_a_waiter_cancelled_just_as_it_was_handed_a_place_passes_the_place_on() -> None:
    gate, release, through, tasks = await three_callers_on_one_place()
    release.set()
    await asyncio.sleep(0)  # the holder leaves and hands its place to caller 1, which has not run yet
    assert (gate.in_flight, through) == (1, [0])
    tasks[1].cancel()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
    assert isinstance(results[1], asyncio.CancelledError)
    assert (through, gate.in_flight) == ([0, 2], 0)


async def test_the_client_times_answers_after_the_budget_granted_them(
    provider: Any, make_client: MakeClient, clock: FakeClock
) -> None:
    async def answer_in_20_ms(request: web.Request) -> web.Response:
        clock.advance(0.020)
        return json_response({"data": {}})

    provider.handler = answer_in_20_ms
    client = make_client(limiter=RateLimiter(1, clock=clock))  # 1 req/s: each request waits ~1 s for its slot
    assert client.latency is None
    for _ in range(3):
        await client.get_json("/x")
    assert sum(clock.sleeps) >= 1.9  # waited for the budget …
    assert client.latency == pytest.approx(0.020)  # … which is not the provider's slowness


async def test_details_go_out_as_many_at_once_as_the_budget_and_latency_call_for(
    provider: Any, make_client: MakeClient
) -> None:
    all_in = asyncio.Event()

    async def hold_until_twelve(request: web.Request) -> web.Response:
        if provider.in_flight >= 12:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), 5)
        return json_response({"data": {"detail": True}})

    provider.handler = hold_until_twelve
    gate = FanOut(440, lambda: 0.020, cap=64)  # ceil(440 × 0.02 × 1.25) + 1 = 12; a fixed 8 never fills it
    records = [{"id": i} for i in range(1, 41)]
    results = await fetch_details(make_client(), resource(), records, fan_out=gate, resource_key="products")
    assert all(r.ok for r in results)
    assert provider.max_in_flight == 12
    assert gate.peak == 12


async def test_details_cut_short_give_every_place_back_to_the_gate(provider: Any, make_client: MakeClient) -> None:
    two_in, never = asyncio.Event(), asyncio.Event()

    async def hold(request: web.Request) -> web.Response:
        if provider.in_flight >= 2:
            two_in.set()
        await never.wait()
        return json_response({"data": {}})

    provider.handler = hold
    gate = FanOut(math.inf, lambda: 0.0, cap=2)
    records = [{"id": i} for i in range(1, 6)]
    fetching = asyncio.create_task(fetch_details(make_client(), resource(), records, fan_out=gate))
    await asyncio.wait_for(two_in.wait(), 5)
    fetching.cancel()  # as a stream closing mid-page does: two requests out, three records never started
    with pytest.raises(asyncio.CancelledError):
        await fetching
    assert gate.in_flight == 0
    async with gate.slot(), gate.slot():  # both places are free again
        assert gate.in_flight == 2


async def test_the_next_pages_details_start_before_this_pages_last_answer(
    provider: Any, make_client: MakeClient
) -> None:
    next_page_asked = asyncio.Event()

    async def first_record_waits_for_the_next_page(request: web.Request) -> web.Response:
        record_id = int(request.match_info["tail"].rsplit("/", 1)[-1])
        if record_id == 1:
            await asyncio.wait_for(next_page_asked.wait(), 5)  # page 1's straggler
        if record_id >= 100:
            next_page_asked.set()
        return json_response({"data": {"detail": record_id}})

    provider.handler = first_record_waits_for_the_next_page

    async def listing() -> AsyncGenerator[Page, None]:
        yield Page(1, [{"id": 1}, {"id": 2}], None, {"page": 2})
        yield Page(2, [{"id": 100}, {"id": 101}], None, {"done": True})

    gate = FanOut(1_000, lambda: 0.020, cap=8)
    stream = with_details(listing(), make_client(), resource(), fan_out=gate, resource_key="products")
    seen = [(page.number, [r.record["detail"] for r in details or ()]) async for page, details in stream]
    assert seen == [(1, [1, 2]), (2, [100, 101])]  # in page order all the same


async def test_the_next_page_is_listed_only_when_this_pages_records_are_nearly_all_through_the_gate(
    provider: Any, make_client: MakeClient
) -> None:
    provider.handler = lambda request: json_response({"data": {"detail": 1}})
    gate = FanOut(math.inf, lambda: 0.0, cap=2)  # two through the gate at a time
    entered: list[int] = []  # each record let through the gate: 1, and 0 where the next page was listed
    enter = gate.enter

    async def counted() -> None:
        await enter()
        entered.append(1)

    gate.enter = counted  # type: ignore[method-assign]

    async def listing() -> AsyncGenerator[Page, None]:
        yield Page(1, [{"id": i} for i in range(1, 7)], None, {"page": 2})
        entered.append(0)
        yield Page(2, [{"id": 100}], None, {"done": True})

    stream = with_details(listing(), make_client(), resource(), fan_out=gate, resource_key="products")
    seen = [(page.number, len(details or ())) async for page, details in stream]
    assert seen == [(1, 6), (2, 1)]
    # Listed when two of page 1's six records were still to go through (a gateful): not beside the
    # whole of page 1, and in time for its details to follow page 1's last ones.
    assert entered == [1, 1, 1, 1, 0, 1, 1, 1]


@pytest.mark.parametrize("details", [True, False], ids=["with_details", "without_details"])
async def test_closing_the_stream_early_closes_its_listing(
    provider: Any, make_client: MakeClient, details: bool
) -> None:
    provider.handler = lambda request: json_response({"data": {"detail": 1}})
    closed: list[int] = []

    async def listing() -> AsyncGenerator[Page, None]:
        try:
            yield Page(1, [{"id": 1}], None, {"page": 2})
            yield Page(2, [{"id": 2}], None, {"page": 3})
            yield Page(3, [{"id": 3}], None, {"done": True})
        finally:
            closed.append(1)  # pages() cancels its pages in flight here

    walk = listing()
    gate = FanOut(1_000, lambda: 0.0, cap=8)
    stream = (
        with_details(walk, make_client(), resource(), fan_out=gate, resource_key="products")
        if details
        else without_details(walk)
    )
    first, _ = await anext(stream)
    await stream.aclose()  # as the engine does when its run is cancelled or fails
    assert first.number == 1
    # Closed by the stream, not left to the collector or the loop's shutdown to close later.
    assert closed == [1]
    assert walk.ag_frame is None
