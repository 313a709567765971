"""The HTTP client every provider call goes through: rate limit, retries, refresh, redaction.

Each attempt first takes a slot from the installation's limiter (D5), so retries, pages and
detail calls all spend the one budget. Failures are retried per ``RetryPolicy`` with sleeps on
the injected clock (D11); a 429 also pauses the limiter, so every caller of the installation
waits, not just the one that was throttled. A 401 runs ``on_unauthorized`` (an OAuth refresh)
once per request and retries with the headers it returns; the secrets it returns join the
redaction set before those headers are sent (D31b), so an error that echoes a refreshed token
never shows it.

A request to an origin outside ``trusted`` (the origins the definition or the operator names) goes
through the egress guard's session when one is given (D31): a tenant-built base URL, a pagination
``next`` link or a redirect off such an origin can then never reach a private address, and the
refusal fails the request at once instead of being retried.

Errors name the resource, the redacted URL and the status (D30): no header value and no known
secret ever reaches a message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Final, Self

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from miniapp_sync import exactjson
from miniapp_sync.clock import Clock
from miniapp_sync.errors import ProviderError
from miniapp_sync.network import REFUSAL, Egress, refused
from miniapp_sync.provider.errors import MAX_ANSWER_BYTES, ProviderResponseError
from miniapp_sync.provider.messages import Call, Method, RawResponse, Refreshed, Response, build_url, origin_key
from miniapp_sync.provider.ratelimit import RateLimiter
from miniapp_sync.provider.redaction import Redactor
from miniapp_sync.provider.retry import RetryPolicy, rate_limit_wait

__all__ = ["ProviderClient"]

_STATUS_CLASSES: Final = ("", "1xx", "2xx", "3xx", "4xx", "5xx")
RefreshHook = Callable[[], Awaitable[Refreshed | None]]


class ProviderClient:
    """Make JSON requests to one provider installation within its rate budget."""

    def __init__(
        self,
        *,
        base_url: str | None,
        headers: Mapping[str, str],
        timeout_ms: int,
        limiter: RateLimiter,
        retry: RetryPolicy,
        clock: Clock,
        session: aiohttp.ClientSession | None = None,
        secrets: Iterable[str] = (),
        on_unauthorized: RefreshHook | None = None,
        egress: Egress | None = None,
        trusted: Iterable[str] = (),
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.base_url = base_url
        self.max_answer_bytes = max_answer_bytes
        self.timeout_ms = timeout_ms
        self.limiter = limiter
        self.retry = retry
        self.clock = clock
        self.redactor = Redactor(secrets)
        self.requests = 0
        self.retries = 0
        self.throttled = 0
        self.unauthorized_refreshes = 0
        # Seconds a request takes once the budget granted it (moving average; None before the first answer).
        self.latency: float | None = None
        # Answers by status class ("2xx", "4xx", …, "error" for no answer) and seconds spent
        # waiting for the rate budget: the sync metrics read them once a resource is done.
        self.statuses: dict[str, int] = {}
        self.waited = 0.0
        # Case-insensitive, so a refreshed "authorization" replaces "Authorization" instead of joining it.
        self._headers: CIMultiDict[str] = CIMultiDict({"Accept": "application/json"})
        self._headers.update({k: str(v) for k, v in headers.items()})
        self._session = session
        self._owns_session = session is None
        self._on_unauthorized = on_unauthorized
        self._auth_generation = 0
        self._auth_lock = asyncio.Lock()
        self._timeout = aiohttp.ClientTimeout(total=timeout_ms / 1000)
        # Without a guard (none given, or --allow-private-network) every request takes the fast path.
        self._egress = egress if egress is not None and not egress.allow_private_network else None
        self._trusted = frozenset(origin_key(URL(origin)) for origin in trusted)
        # Relative URLs share the base's origin: decided once here, not per request (the hot path).
        self._base_guarded = self._egress is not None and (
            base_url is None or origin_key(URL(base_url)) not in self._trusted
        )
        self._guarded: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP sessions this client created."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None
        if self._guarded is not None:
            await self._guarded.close()
            self._guarded = None

    def guarded(self, url: str, target: URL) -> bool:
        """Return whether a request for ``url`` (built into ``target``) must pass the private-network guard (D31)."""
        if self._egress is None:
            return False
        if not url.startswith(("http://", "https://")):
            return self._base_guarded
        return origin_key(target) not in self._trusted

    def redact_url(self, url: str | URL) -> str:
        """Return a URL fit for a message (D30)."""
        return self.redactor.url(str(url))

    async def get_json(
        self, url: str, params: Mapping[str, Any] | None = None, *, resource: str | None = None, what: str = "list"
    ) -> Response:
        """GET ``url`` (relative to the base URL unless absolute) and decode its JSON body."""
        return await self.request_json("GET", url, params, resource=resource, what=what)

    async def request_json(
        self,
        method: Method,
        url: str,
        params: Mapping[str, Any] | None = None,
        *,
        resource: str | None = None,
        what: str = "list",
    ) -> Response:
        """Send a body-less request within the rate budget, retrying per the policy; decode the JSON answer."""
        return self.decode(await self.request_body(method, url, params, resource=resource, what=what))

    async def request_body(
        self,
        method: Method,
        url: str,
        params: Mapping[str, Any] | None = None,
        *,
        resource: str | None = None,
        what: str = "list",
    ) -> RawResponse:
        """Send a request as ``request_json`` does, but leave the body undecoded, for ``decode``.

        A page fetched ahead of its turn then waits as one bytes object, not as thousands of
        objects that the garbage collector walks again and again while it waits.
        """
        target = build_url(self.base_url, url, params)
        call = Call(method, target, resource, what, self, guarded=self.guarded(url, target))
        started = self.clock.monotonic()
        attempts = failures = 0
        refreshed = False
        while True:
            waiting = self.clock.monotonic()
            await self.limiter.acquire()
            self.waited += self.clock.monotonic() - waiting
            attempts += 1
            self.requests += 1
            generation, headers = self._auth_generation, CIMultiDict(self._headers)
            sent = self.clock.monotonic()
            try:
                status, answer_headers, body, final_url, content_type = await self._send(call, headers)
                self._observe(self.clock.monotonic() - sent)
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._answered("error")
                failures += 1
                if refused(exc):  # the guard's answer will not change on a retry
                    raise ProviderError(f"{call.where}{method} {call.url} {self._describe(exc)}") from None
                if not self.retry.retryable(exc):
                    raise ProviderError(f"{call.where}{method} {call.url} failed: {self._describe(exc)}") from exc
                if failures >= self.retry.max_attempts:
                    raise call.connection_error(self._describe(exc), attempts) from exc
                await self._back_off(self.retry.delay(failures - 1, now=self.clock.now()))
                continue
            self._answered(_STATUS_CLASSES[status // 100] if 1 <= status // 100 <= 5 else "other")
            if status == 401 and self._on_unauthorized is not None and not refreshed:
                refreshed = True
                await self._refresh(generation)
                continue
            if 200 <= status < 300:
                self._respect_hints(answer_headers)
                elapsed = self.clock.monotonic() - started
                return RawResponse(status, answer_headers, body, final_url, content_type, elapsed, attempts, call)
            failures += 1
            if status == 429:
                self.throttled += 1
            if self.retry.retryable(status) and failures < self.retry.max_attempts:
                delay = self.retry.delay(failures - 1, response_headers=answer_headers, now=self.clock.now())
                if delay > self.retry.max_retry_after:
                    raise call.wait_refused(status, answer_headers, delay, self.retry.max_retry_after, attempts)
                await self._back_off(delay, throttled=status == 429)
                continue
            raise call.http_error(status, self.redactor.body(body), attempts)

    def _observe(self, seconds: float) -> None:
        # A fifth of each new answer: follows a provider that slows down within a few requests,
        # and one slow answer moves it by a fifth only.
        self.latency = seconds if self.latency is None else self.latency + 0.2 * (seconds - self.latency)

    def _answered(self, status_class: str) -> None:
        self.statuses[status_class] = self.statuses.get(status_class, 0) + 1

    async def _send(self, call: Call, headers: CIMultiDict[str]) -> tuple[int, CIMultiDictProxy[str], bytes, str, str]:
        if call.guarded:
            assert self._egress is not None
            if self._guarded is None:
                self._guarded = self._egress.session()
            session = self._guarded
        else:
            if self._session is None:
                self._session = aiohttp.ClientSession()
            session = self._session
        async with session.request(call.method, call.target, headers=headers, timeout=self._timeout) as answer:
            # Read up to the limit, counting decompressed bytes: a store's server (a tenant's own, for
            # WooCommerce) must not make the runtime hold an endless or gzip-bombed answer in memory.
            limit, length = self.max_answer_bytes, answer.content_length
            if length is not None and length > limit:
                raise call.too_large(answer.status, limit)
            chunks, size = [], 0
            async for chunk in answer.content.iter_any():
                size += len(chunk)
                if size > limit:
                    raise call.too_large(answer.status, limit)
                chunks.append(chunk)
            return answer.status, answer.headers, b"".join(chunks), str(answer.url), answer.content_type

    async def _back_off(self, delay: float, *, throttled: bool = False) -> None:
        self.retries += 1
        if throttled:
            # The budget is the installation's: everyone waits, not only the caller that hit the 429.
            self.limiter.pause_until(self.clock.monotonic() + delay)
        await self.clock.sleep(delay)

    def _respect_hints(self, headers: Mapping[str, str]) -> None:
        # A success that says the provider's bucket is empty (shared with other apps of the store)
        # pauses the budget now, rather than after the 429 it announces.
        wait = rate_limit_wait(headers, now=self.clock.now())
        if wait:
            # Capped as Retry-After is (D38): past the cap the next request asks, and fails if told to wait.
            self.limiter.pause_until(self.clock.monotonic() + min(wait, self.retry.max_retry_after))

    async def _refresh(self, generation: int) -> None:
        assert self._on_unauthorized is not None
        async with self._auth_lock:
            # Concurrent requests that failed with the same credentials refresh once: refresh
            # tokens are often single-use, and reusing one revokes the grant (Salla).
            if generation != self._auth_generation:
                return
            fresh = await self._on_unauthorized()
            self.unauthorized_refreshes += 1
            if fresh is not None:
                self.redactor.add(fresh.secrets)
                self._headers.update({k: str(v) for k, v in fresh.headers.items()})
            self._auth_generation += 1

    def decode(self, raw: RawResponse) -> Response:
        """Decode an answer's JSON body; raise ProviderResponseError naming the request when it is not JSON."""
        return Response(raw.status, raw.headers, self._decode(raw), raw.url, raw.elapsed, raw.attempts)

    def _decode(self, raw: RawResponse) -> Any:
        body, call = raw.body, raw.call
        if not body.strip():
            return None
        try:
            return exactjson.loads(body)  # record ids of any size stay exact (D26)
        except exactjson.JSONDecodeError:
            start = self.redactor.body(body, limit=40)
            raise ProviderResponseError(
                f"{call.where}{call.method} {call.url} answered {raw.status} with {raw.content_type}, "
                f"expected JSON (starts with '{start}')",
                url=call.url,
                resource=call.resource,
                content_type=raw.content_type,
                body_preview=start,
            ) from None

    def _describe(self, exc: BaseException) -> str:
        if refused(exc):
            return REFUSAL
        if isinstance(exc, TimeoutError):
            return f"timed out after {self.timeout_ms} ms"
        text = self.redactor.text(str(exc))
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
