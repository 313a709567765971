"""ProviderClient against a real aiohttp server: joining, retries, refresh, errors and redaction (D11, D30)."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from miniapp_sync.errors import ProviderError
from miniapp_sync.provider import (
    AnswerTooLarge,
    ProviderClient,
    ProviderConnectionError,
    ProviderHTTPError,
    ProviderResponseError,
    RateLimiter,
    Refreshed,
    RetryPolicy,
    build_url,
    join_url,
)
from miniapp_sync.testing import FakeClock

from .conftest import SEED, json_response

MakeClient = Callable[..., ProviderClient]


def answers(*responses: Callable[[], web.StreamResponse]) -> Callable[[web.Request], Any]:
    """Return a handler that gives each response in turn, then repeats the last."""
    queue = list(responses)

    async def handler(request: web.Request) -> web.StreamResponse:
        return (queue.pop(0) if len(queue) > 1 else queue[0])()

    return handler


def ok(body: Any = None) -> Callable[[], web.Response]:
    return lambda: json_response({"ok": True} if body is None else body)


def status(code: int, headers: dict[str, str] | None = None, body: Any = None) -> Callable[[], web.Response]:
    return lambda: json_response(body or {"error": code}, status=code, headers=headers)


class RecordingLimiter(RateLimiter):
    """A limiter that also remembers every pause asked of it."""

    def __init__(self, rate: float, *, clock: FakeClock) -> None:
        super().__init__(rate, clock=clock)
        self.pauses: list[float] = []

    def pause_until(self, monotonic_time: float) -> None:
        self.pauses.append(monotonic_time)
        super().pause_until(monotonic_time)


@pytest.mark.parametrize(
    ("base", "url", "expected"),
    [
        ("https://api/v2", "/products", "https://api/v2/products"),
        ("https://api/v2/", "/products", "https://api/v2/products"),
        ("https://api/v2/", "products", "https://api/v2/products"),
        ("https://api/v2", "products", "https://api/v2/products"),
        ("https://api/v2", "/products?status=active", "https://api/v2/products?status=active"),
        ("https://api/v2", "https://other.example/x", "https://other.example/x"),
        (None, "http://127.0.0.1:8080/orders", "http://127.0.0.1:8080/orders"),
        ("https://shop.example/wp-json/wc/v3", "", "https://shop.example/wp-json/wc/v3"),
    ],
)
def test_join_url(base: str | None, url: str, expected: str) -> None:
    assert join_url(base, url) == expected


def test_a_relative_url_without_a_base_url_is_an_error() -> None:
    with pytest.raises(ProviderError, match=r"'/products' is relative, but sync.baseUrl is not set"):
        join_url(None, "/products")


def test_build_url_keeps_the_query_and_merges_params_over_it() -> None:
    url = build_url(
        "https://api/v2", "/products?status=active&page=9", {"page": 2, "per_page": 60, "draft": False, "x": None}
    )
    assert str(url) == "https://api/v2/products?status=active&page=2&per_page=60&draft=false"


async def test_get_json_decodes_the_body_and_reports_the_call(provider: Any, make_client: MakeClient) -> None:
    provider.handler = answers(lambda: json_response({"data": [1, 2]}, headers={"X-WP-Total": "2"}))
    client = make_client(base_url=provider.url + "/v2/", headers={"Authorization": "Bearer t"})
    response = await client.get_json("/products", {"page": 1}, resource="products")
    assert response.status == 200
    assert response.data == {"data": [1, 2]}
    assert response.headers["x-wp-total"] == "2"
    assert response.url == provider.url + "/v2/products?page=1"
    assert response.attempts == 1
    assert response.elapsed == 0.0
    seen = provider.requests[0]
    assert seen.path == "/v2/products"
    assert seen.headers["Authorization"] == "Bearer t"
    assert seen.headers["Accept"] == "application/json"
    assert (client.requests, client.retries, client.throttled) == (1, 0, 0)


async def test_an_empty_body_decodes_to_none(provider: Any, make_client: MakeClient) -> None:
    provider.handler = answers(lambda: web.Response(status=204))
    assert (await make_client().get_json("/x")).data is None


async def test_a_503_is_retried_after_a_jittered_sleep(
    provider: Any, make_client: MakeClient, clock: FakeClock
) -> None:
    provider.handler = answers(status(503), ok())
    client = make_client()
    response = await client.get_json("/products", resource="products")
    assert response.attempts == 2
    assert clock.sleeps == [random.Random(SEED).uniform(0, 0.5)]
    assert 0 <= clock.sleeps[0] <= 0.5
    assert (client.requests, client.retries) == (2, 1)


async def test_retry_after_seconds_is_obeyed_and_a_429_pauses_the_budget(
    provider: Any, make_client: MakeClient, clock: FakeClock
) -> None:
    provider.handler = answers(status(429, {"Retry-After": "7"}), ok())
    limiter = RecordingLimiter(1_000, clock=clock)
    client = make_client(limiter=limiter)
    await client.get_json("/products")
    assert clock.sleeps == [7.0]
    assert limiter.pauses == [7.0]
    assert client.throttled == 1


async def test_retry_after_as_an_http_date_is_relative_to_the_clock(
    provider: Any, make_client: MakeClient, clock: FakeClock
) -> None:
    when = format_datetime(datetime.fromtimestamp(clock.now() + 30, UTC), usegmt=True)
    provider.handler = answers(status(429, {"Retry-After": when}), ok())
    await make_client().get_json("/products")
    assert clock.sleeps == [30.0]


async def test_retry_after_of_a_day_fails_the_attempt_with_the_providers_value(
    provider: Any, make_client: MakeClient, clock: FakeClock
) -> None:
    provider.handler = answers(status(429, {"Retry-After": "86400"}), ok())
    with pytest.raises(ProviderHTTPError) as caught:
        await make_client().get_json("/products", resource="products")
    message = str(caught.value)
    assert "answered 429 and asked to wait 86400 s (Retry-After: 86400)" in message
    assert "longer than the 300 s this deployment waits" in message
    assert "--max-retry-after" in message
    assert clock.sleeps == []  # no day-long sleep, not even a capped one
    assert len(provider.requests) == 1


async def test_the_retry_after_cap_is_configurable(provider: Any, make_client: MakeClient, clock: FakeClock) -> None:
    reset = str(int(clock.now()) + 900)
    busy = status(503, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})
    provider.handler = answers(busy, busy, ok())
    refused = r"asked to wait 900 s \(X-RateLimit-Reset: \d+\), longer than the 60 s"
    with pytest.raises(ProviderHTTPError, match=refused):
        await make_client(retry=RetryPolicy(random=random.Random(SEED), max_retry_after=60)).get_json("/p")
    await make_client(retry=RetryPolicy(random=random.Random(SEED), max_retry_after=3600)).get_json("/p")
    assert clock.sleeps == [900.0]


async def test_a_success_announcing_a_reset_past_the_cap_pauses_only_up_to_the_cap(
    provider: Any, make_client: MakeClient, clock: FakeClock
) -> None:
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(clock.now()) + 86400)}
    provider.handler = answers(lambda: json_response({}, headers=headers), ok())
    client = make_client()
    await client.get_json("/a")
    await client.get_json("/b")
    assert clock.sleeps == [300.0]


async def test_an_exhausted_rate_limit_waits_until_its_reset(
    provider: Any, make_client: MakeClient, clock: FakeClock
) -> None:
    reset = str(int(clock.now()) + 12)
    provider.handler = answers(status(429, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}), ok())
    await make_client().get_json("/products")
    assert clock.sleeps == [12.0]


async def test_a_success_announcing_an_empty_bucket_pauses_before_the_next_request(
    provider: Any, make_client: MakeClient, clock: FakeClock
) -> None:
    reset = str(int(clock.now()) + 3)
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
    provider.handler = answers(lambda: json_response({}, headers=headers), ok())
    client = make_client()
    await client.get_json("/a")
    await client.get_json("/b")
    assert clock.sleeps == [3.0]
    assert client.throttled == 0


async def test_giving_up_names_the_resource_the_url_and_the_status(
    provider: Any, make_client: MakeClient, clock: FakeClock
) -> None:
    provider.handler = answers(status(503, body={"message": "maintenance"}))
    client = make_client(retry=RetryPolicy(max_attempts=3, random=random.Random(SEED)))
    with pytest.raises(ProviderHTTPError) as caught:
        await client.get_json("/v2/products", {"page": 3, "per_page": 60}, resource="products")
    url = f"{provider.url}/v2/products?page=3&per_page=60"
    assert str(caught.value).startswith(f"products list: GET {url} answered 503 after 3 attempts")
    assert '"message":"maintenance"' in str(caught.value)
    assert (caught.value.status, caught.value.url, caught.value.resource) == (503, url, "products")
    assert len(provider.requests) == 3
    assert len(clock.sleeps) == 2


async def test_every_429_counts_as_throttled_even_the_last(provider: Any, make_client: MakeClient) -> None:
    provider.handler = answers(status(429, {"Retry-After": "1"}))
    client = make_client(retry=RetryPolicy(max_attempts=2, random=random.Random(SEED)))
    with pytest.raises(ProviderHTTPError, match="answered 429 after 2 attempts"):
        await client.get_json("/orders", resource="orders")
    assert (client.requests, client.retries, client.throttled) == (2, 1, 2)


async def test_a_404_is_not_retried(provider: Any, make_client: MakeClient, clock: FakeClock) -> None:
    provider.handler = answers(status(404))
    with pytest.raises(ProviderHTTPError, match=r"products details: GET .*/products/9 answered 404; .*hint: check"):
        await make_client().get_json("/products/9", resource="products", what="details")
    assert len(provider.requests) == 1
    assert clock.sleeps == []


def bearer_gate(valid: str) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {valid}":
            return json_response({"error": "unauthorized"}, status=401)
        return json_response({"ok": True})

    return handler


async def test_a_401_refreshes_once_and_retries_with_the_new_headers(provider: Any, make_client: MakeClient) -> None:
    provider.handler = bearer_gate("fresh")
    calls: list[int] = []

    async def refresh() -> Refreshed:
        calls.append(1)
        # Replaces "Authorization": header names are case-insensitive.
        return Refreshed({"authorization": "Bearer fresh"}, ("fresh",))

    client = make_client(headers={"Authorization": "Bearer stale", "X-Store": "7"}, on_unauthorized=refresh)
    assert (await client.get_json("/orders")).data == {"ok": True}
    await client.get_json("/orders")  # later requests use the refreshed headers from the start
    assert calls == [1]
    assert client.unauthorized_refreshes == 1
    assert [r.headers["Authorization"] for r in provider.requests] == ["Bearer stale", "Bearer fresh", "Bearer fresh"]
    assert provider.requests[-1].headers["X-Store"] == "7"


async def test_a_second_401_fails_without_showing_the_token(provider: Any, make_client: MakeClient) -> None:
    provider.handler = bearer_gate("never")
    calls: list[int] = []

    async def refresh() -> Refreshed:
        calls.append(1)
        return Refreshed({"Authorization": "Bearer new-tok-123"}, ("new-tok-123",))

    client = make_client(headers={"Authorization": "Bearer old-tok-456"}, on_unauthorized=refresh)
    with pytest.raises(ProviderHTTPError, match="answered 401") as caught:
        await client.get_json("/orders", resource="orders")
    assert caught.value.status == 401
    assert calls == [1]
    assert len(provider.requests) == 2
    assert "tok-" not in str(caught.value)


async def test_a_token_obtained_by_a_refresh_is_redacted_from_errors(provider: Any, make_client: MakeClient) -> None:
    fresh = "ory_at_refreshed-Zq81x"

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {fresh}":
            return json_response({"error": "expired"}, status=401)
        # A provider that echoes what it was sent, as some debug-minded APIs do.
        return json_response({"error": f"store suspended for token {fresh}"}, status=403)

    provider.handler = handler

    async def refresh() -> Refreshed:
        return Refreshed({"Authorization": f"Bearer {fresh}"}, (fresh,))

    client = make_client(headers={"Authorization": "Bearer stale"}, on_unauthorized=refresh)
    with pytest.raises(ProviderHTTPError, match="answered 403") as caught:
        await client.get_json(f"/orders?note={fresh}", resource="orders")
    assert fresh not in str(caught.value) + repr(vars(caught.value))


async def test_a_401_without_a_refresh_hook_fails_at_once_with_a_hint(provider: Any, make_client: MakeClient) -> None:
    provider.handler = bearer_gate("x")
    with pytest.raises(ProviderHTTPError, match="rejected the credentials"):
        await make_client().get_json("/orders")
    assert len(provider.requests) == 1


async def test_concurrent_401s_refresh_the_token_only_once(provider: Any, make_client: MakeClient) -> None:
    provider.handler = bearer_gate("fresh")
    calls: list[int] = []

    async def refresh() -> Refreshed:
        calls.append(1)
        await asyncio.sleep(0)
        return Refreshed({"Authorization": "Bearer fresh"}, ("fresh",))

    client = make_client(headers={"Authorization": "Bearer stale"}, on_unauthorized=refresh)
    results = await asyncio.gather(*(client.get_json(f"/orders/{i}") for i in range(5)))
    assert all(r.data == {"ok": True} for r in results)
    assert calls == [1]


async def test_a_timeout_is_retried(provider: Any, make_client: MakeClient) -> None:
    attempts: list[int] = []

    async def slow_then_fast(request: web.Request) -> web.Response:
        attempts.append(1)
        if len(attempts) == 1:
            await provider.release.wait()  # outlives the client's 50 ms timeout
        return json_response({"ok": True})

    provider.handler = slow_then_fast
    response = await make_client(timeout_ms=50).get_json("/slow")
    assert response.attempts == 2


async def test_timeouts_on_every_attempt_fail_with_the_cause(provider: Any, make_client: MakeClient) -> None:
    async def stuck(request: web.Request) -> web.Response:
        await provider.release.wait()
        return json_response({})

    provider.handler = stuck
    client = make_client(timeout_ms=50, retry=RetryPolicy(max_attempts=2, random=random.Random(SEED)))
    with pytest.raises(ProviderConnectionError) as caught:
        await client.get_json("/products", {"page": 1}, resource="products")
    assert str(caught.value) == (
        f"products list: GET {provider.url}/products?page=1 failed after 2 attempts: timed out after 50 ms"
    )


async def test_a_dropped_connection_is_retried(provider: Any, make_client: MakeClient) -> None:
    dropped: list[int] = []

    async def drop_once(request: web.Request) -> web.StreamResponse:
        if len(dropped) < 2:  # aiohttp itself retries a GET once on a dropped connection
            dropped.append(1)
            assert request.transport is not None
            request.transport.close()
            await provider.release.wait()
        return json_response({"ok": True})

    provider.handler = drop_once
    client = make_client()
    response = await client.get_json("/x")
    assert response.attempts == 2
    assert client.retries == 1
    assert len(provider.requests) == 3


async def test_an_unreachable_provider_fails_naming_the_url(clock: FakeClock, make_client: MakeClient) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    # Seeded: an unseeded full-jitter back-off under the 1 ms interval of the limiter adds its own sleep.
    retry = RetryPolicy(max_attempts=2, random=random.Random(SEED))
    client = make_client(base_url=f"http://127.0.0.1:{port}", retry=retry)
    with pytest.raises(ProviderConnectionError, match=rf"customers list: GET http://127.0.0.1:{port}/c failed after 2"):
        await client.get_json("/c", resource="customers")
    assert len(clock.sleeps) == 1


async def test_an_html_body_is_a_response_error(provider: Any, make_client: MakeClient) -> None:
    page = "<!DOCTYPE html><html><head><title>Login</title></head><body>Please sign in</body></html>"
    provider.handler = answers(lambda: web.Response(text=page, content_type="text/html"))
    with pytest.raises(ProviderResponseError) as caught:
        await make_client().get_json("/products", {"page": 3}, resource="products")
    assert str(caught.value) == (
        f"products list: GET {provider.url}/products?page=3 answered 200 with text/html, "
        "expected JSON (starts with '<!DOCTYPE html><html><head><title>Login…')"
    )
    assert caught.value.content_type == "text/html"


async def test_secrets_never_appear_in_error_messages(provider: Any, make_client: MakeClient) -> None:
    token, header_secret = "tok-Sup3rS3cret", "hdr-Pa55word"
    provider.handler = answers(status(500, body={"error": f"bad token {token}", "echo": header_secret}))
    client = make_client(
        headers={"Authorization": f"Bearer {header_secret}"},
        secrets=[token, header_secret],
        retry=RetryPolicy(max_attempts=2, random=random.Random(SEED)),
    )
    errors: list[ProviderError] = []
    for url in (f"/orders?access_token={token}&page=2", f"/orders?t={token}"):
        with pytest.raises(ProviderHTTPError) as caught:
            await client.get_json(url, resource="orders")
        errors.append(caught.value)
    provider.handler = answers(lambda: web.Response(text=f"<html>{token}</html>", content_type="text/html"))
    with pytest.raises(ProviderResponseError) as html:
        await client.get_json(f"/orders?consumer_key={token}", resource="orders")
    errors.append(html.value)
    for error in errors:
        text = str(error) + repr(vars(error))
        assert token not in text
        assert header_secret not in text
    assert "access_token=***&page=2" in str(errors[0])
    assert "t=***" in str(errors[1])


async def test_the_client_closes_only_a_session_it_created(provider: Any, clock: FakeClock) -> None:
    provider.handler = answers(ok())
    options: dict[str, Any] = {
        "base_url": provider.url,
        "headers": {},
        "timeout_ms": 1_000,
        "limiter": RateLimiter(100, clock=clock),
        "retry": RetryPolicy(),
        "clock": clock,
    }
    async with aiohttp.ClientSession() as session:
        async with ProviderClient(session=session, **options) as borrowed:
            await borrowed.get_json("/x")
        assert not session.closed
    async with ProviderClient(**options) as owner:
        await owner.get_json("/x")
        own = owner._session
        assert own is not None
    assert own.closed


async def test_every_attempt_goes_through_the_limiter(provider: Any, make_client: MakeClient, clock: FakeClock) -> None:
    provider.handler = answers(status(502), status(502), ok())
    limiter = RateLimiter(1, clock=clock)  # one request a second: slower than the backoff
    client = make_client(limiter=limiter, retry=RetryPolicy(base=0.1, random=random.Random(SEED)))
    await client.get_json("/x")
    # Three attempts, at least a second apart: the second one interval after the first, the third
    # planned the margin further on.
    assert clock.monotonic() == pytest.approx(1.0 + limiter.spacing)


def _streamed(size: int, *, gzipped: bool = False) -> Callable[[web.Request], Any]:
    """Answer ``size`` bytes of a JSON array, chunked (no Content-Length), optionally gzipped."""

    async def handler(request: web.Request) -> web.StreamResponse:
        answer = web.StreamResponse(headers={"Content-Type": "application/json"})
        if gzipped:
            answer.enable_compression(web.ContentCoding.gzip)
        await answer.prepare(request)
        await answer.write(b"[" + b"0," * ((size - 3) // 2) + b"0]")
        await answer.write_eof()
        return answer

    return handler


@pytest.mark.parametrize(
    ("handler", "kind"),
    [
        (lambda: _streamed(5_000), "chunked"),
        (lambda: _streamed(50_000, gzipped=True), "gzip"),
        (lambda: answers(ok(list(range(2_000)))), "content-length"),
    ],
)
async def test_an_answer_longer_than_the_limit_fails_without_a_retry(
    provider: Any, make_client: MakeClient, clock: FakeClock, handler: Callable[[], Any], kind: str
) -> None:
    provider.handler = handler()
    client = make_client(max_answer_bytes=1_000)
    with pytest.raises(AnswerTooLarge) as caught:
        await client.get_json("/products", {"page": 1}, resource="products")
    assert str(caught.value) == (
        f"products list: GET {provider.url}/products?page=1 answered 200 with more than 1,000 bytes (decompressed), "
        "the most this client reads from one answer (hint: ask for smaller pages: pagination.defaultLimit)"
    ), kind
    assert client.requests == 1
    assert clock.sleeps == []


async def test_an_answer_within_the_limit_is_read_whole(provider: Any, make_client: MakeClient) -> None:
    provider.handler = _streamed(999, gzipped=True)
    assert len((await make_client(max_answer_bytes=1_000).get_json("/products")).data) == 499
