"""The sandbox provider: a Salla-shaped Admin API v2 and OAuth server on aiohttp.web, on 127.0.0.1.

Every /admin/v2 request passes, in order: stats, latency, injected faults, bearer auth, the rate
limit (metered at the request's arrival), then the route. OAuth routes (/oauth2/…) get stats and
faults armed with a matching ``path_prefix`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from types import TracebackType
from typing import Any, Final

import aiohttp
import orjson
from aiohttp import web
from yarl import URL

from miniapp_sync.clock import Clock, SystemClock
from miniapp_sync.listening import listen
from miniapp_sync.sandbox import catalog
from miniapp_sync.sandbox.config import SandboxConfig
from miniapp_sync.sandbox.faults import Fault, Faults
from miniapp_sync.sandbox.oauth import OAuthServer, bearer
from miniapp_sync.sandbox.pagination import page_of
from miniapp_sync.sandbox.ratelimit import RateLimiter
from miniapp_sync.sandbox.records import SandboxData, list_view, localize, resource_key
from miniapp_sync.sandbox.responses import error_code, error_response, unauthorized
from miniapp_sync.sandbox.shapes import Record
from miniapp_sync.sandbox.stats import SandboxStats
from miniapp_sync.sandbox.webhooks import delivery, event_resource, sign

API: Final = "/admin/v2"
PATHS: Final = {
    "products": "/products",
    "customers": "/customers",
    "orders": "/orders",
    "abandonedCarts": "/carts/abandoned",
}
_NOUNS: Final = {"products": "product", "customers": "customer", "orders": "order", "abandonedCarts": "cart"}
REPEATED_PAGES: Final = 1_000_000  # what repeat_page_forever reports as totalPages
CONTROL: Final = "/sandbox"  # the sandbox's own routes, for people trying things by hand

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Sandbox:
    """A Salla-shaped provider to sync from: generated records, OAuth, rate limit and injected faults."""

    def __init__(self, config: SandboxConfig | None = None, *, clock: Clock | None = None) -> None:
        self.config = config or SandboxConfig()
        self.clock: Clock = clock or SystemClock()
        self.stats = SandboxStats()
        cfg = self.config
        counts = {"products": cfg.products, "customers": cfg.customers, "orders": cfg.orders}
        self._store = SandboxData(counts | {"abandonedCarts": cfg.carts}, cfg.seed)
        # The live records in their detail shape, by id: products, customers, orders, abandonedCarts.
        self.data: dict[str, list[Record]] = self._store.records
        self._faults = Faults()
        self._oauth = OAuthServer(cfg, self.clock)
        self._limiter = RateLimiter(cfg.rate_limit, self.clock) if cfg.rate_limit is not None else None
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self.base_url = ""
        self.api_url = ""

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0: any free port); return the base URL."""
        if self._runner is not None:
            raise RuntimeError(f"the sandbox is already serving at {self.base_url}")
        self._stopping = asyncio.Event()
        app = web.Application(middlewares=[self._middleware])
        for resource, path in PATHS.items():
            app.router.add_get(API + path, self._lister(resource))
            app.router.add_get(API + path + "/{id}", self._detailer(resource))
        self._oauth.add_routes(app)
        app.router.add_post(CONTROL + "/webhooks", self._send_webhook)
        # Paused handlers end at once on stop(), so a short grace period is plenty.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.SockSite(runner, listen(host, port)).start()  # a busy port: a clear ListenError
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound = runner.addresses[0][1]
        # A wildcard bind is reached through loopback; an IPv6 literal needs brackets in a URL.
        shown = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
        self.base_url = f"http://{shown}:{bound}"
        self.api_url = self.base_url + API
        return self.base_url

    async def stop(self) -> None:
        """Stop serving; requests held by latency or ``hang_next`` end at once."""
        self._stopping.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # ------------------------------------------------------------------ fault injection

    def fail_next(
        self,
        count: int,
        *,
        status: int = 503,
        path_prefix: str | None = None,
        body: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` (and ``body``, ``Retry-After``)."""
        self._faults.arm(Fault("fail", count, path_prefix, status, body, retry_after))

    def clear_faults(self) -> None:
        """Disarm the faults still queued (an outage that ends): later requests are answered normally."""
        self._faults.clear()

    def html_next(self, count: int = 1, path_prefix: str | None = None) -> None:
        """Answer the next ``count`` matching requests 200 with an HTML page instead of JSON."""
        self._faults.arm(Fault("html", count, path_prefix))

    def hang_next(self, count: int, seconds: float, path_prefix: str | None = None) -> None:
        """Hold the next ``count`` matching requests ``seconds`` (real time) before answering."""
        self._faults.arm(Fault("hang", count, path_prefix, seconds=seconds))

    def echo_credentials_next(self, count: int = 1, *, status: int = 403, path_prefix: str | None = None) -> None:
        """Answer the next ``count`` matching requests with valid credentials ``status``, quoting their token."""
        self._faults.arm(Fault("echo", count, path_prefix, status))

    def missing_details(self, resource: str, ids: Iterable[int]) -> None:
        """Make the detail endpoint answer 404 for these ids; lists still show them."""
        self._faults.hide(resource_key(resource), ids)

    def expire_access_token(self) -> None:
        """Make the live access tokens answer 401 (expired) until refreshed through /oauth2/token."""
        self._oauth.expire_all()

    def repeat_page_forever(self, resource: str) -> None:
        """Make every page of a resource return page 1's records, with a huge totalPages."""
        self._faults.repeat(resource_key(resource))

    # ------------------------------------------------------------------ data changes and webhooks

    def mutate(self, resource: str, id: int, **changes: Any) -> Record:
        """Change a record (a slug is enough for an order ``status``) and its ``updated_at``; return it."""
        return self._store.mutate(resource_key(resource), id, changes, self.clock.now())

    def add(self, resource: str, count: int = 1) -> list[Record]:
        """Create ``count`` records dated now (orders and carts of existing customers and products)."""
        return self._store.add(resource_key(resource), count, self.clock.now())

    def delete(self, resource: str, id: int) -> None:
        """Remove a record from lists and details."""
        self._store.delete(resource_key(resource), id)

    def sign(self, body: bytes) -> str:
        """Return the X-Salla-Signature of ``body``: hex HMAC-SHA256 keyed with the webhook secret."""
        return sign(self.config.webhook_secret, body)

    def webhook(self, event: str, record: Record | None = None, *, tenant: int = 0) -> tuple[bytes, dict[str, str]]:
        """Return a signed delivery (raw body, headers) of ``record``, or of the newest record the event concerns.

        ``tenant``: the store that sends it (its merchant id is the delivery's ``merchant``).
        """
        merchant = self.config.merchant(tenant)
        if record is None:
            record = self.webhook_record(event_resource(event))
        with self._store.lock:
            return delivery(event, record, merchant=merchant, secret=self.config.webhook_secret, now=self.clock.now())

    async def _send_webhook(self, request: web.Request) -> web.Response:
        """POST /sandbox/webhooks {event, to, id?, changes?}: send a signed delivery, as the store would.

        The record is ``id``'s, else a new one for a ``*.created`` event, else the newest; ``changes``
        are applied to it first (``{"status": "shipped"}`` for an order). Answers with what the
        receiver answered.
        """
        try:
            ask = orjson.loads(await request.read())  # whatever Content-Type curl -d sent
        except orjson.JSONDecodeError:
            ask = None
        if not isinstance(ask, dict) or not isinstance(ask.get("event"), str) or not isinstance(ask.get("to"), str):
            raise web.HTTPBadRequest(text='expected JSON {"event": "order.created", "to": "http://…", "id"?, …}')
        event, to, changes = ask["event"], URL(ask["to"]), ask.get("changes") or {}
        if to.scheme not in ("http", "https") or not to.host:
            raise web.HTTPBadRequest(text=f"'to' must be an http(s) URL, not {ask['to']!r}")
        try:
            resource = event_resource(event)
            if "id" in ask:
                record = self.mutate(resource, int(ask["id"]), **changes)
            else:
                created = event.endswith(".created") or event == "abandoned.cart"
                newest = self.add(resource)[0] if created else self.webhook_record(resource)
                record = self.mutate(resource, newest["id"], **changes) if changes else newest
        except (ValueError, KeyError, TypeError) as exc:
            raise web.HTTPBadRequest(text=str(exc).strip("'\"")) from None
        raw, headers = self.webhook(event, record)
        async with aiohttp.ClientSession() as http, http.post(to, data=raw, headers=headers) as answer:
            said = (await answer.read())[:1000].decode(errors="replace")
        return web.json_response({"event": event, "id": record["id"], "status": answer.status, "answer": said})

    def webhook_record(self, resource: str) -> Record:
        """Return the newest record of a resource (what a delivery concerns when none is named)."""
        with self._store.lock:
            if not self.data[resource]:
                raise ValueError(f"no {resource} record to send")
            return self.data[resource][-1]

    # ------------------------------------------------------------------ serving

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        api_path = path[len(API) :] if path == API or path.startswith(API + "/") else None
        resource = request.match_info.route.resource
        route = f"{request.method} {resource.canonical if resource is not None else '(no route)'}"
        arrived = self.clock.monotonic()
        self.stats.record(route, arrived, api=api_path is not None)
        try:
            response = await self._serve(request, handler, api_path, arrived)
        except web.HTTPException as exc:
            if api_path is None or exc.status < 400:
                self.stats.answered(exc.status)
                raise
            response = error_response(exc.status, error_code(exc.status), exc.reason)
        self.stats.answered(response.status)
        return response

    async def _serve(
        self, request: web.Request, handler: Handler, api_path: str | None, arrived: float
    ) -> web.StreamResponse:
        if api_path is not None and self.config.latency > 0:
            await self._pause(self.config.latency)
        fault = self._faults.take(request.path, api_path)
        if fault is not None:
            if fault.kind != "hang":
                return fault.response()
            await self._pause(fault.seconds)
        token = bearer(request)
        if self._faults.echoing and self._oauth.state(token) == "valid":
            echo = self._faults.take(request.path, api_path, echo=True)
            if echo is not None:
                return echo.echo(request)
        if api_path is None:
            return await handler(request)
        state = self._oauth.state(token)
        if token is None or state != "valid":
            message = (
                "The access token is expired." if state == "expired" else "The access token should be a valid token."
            )
            return unauthorized(message)
        tenant = self._oauth.tenant(token) or 0
        if self._limiter is None:
            self.stats.authorised(tenant, limited=False)
            return await handler(request)
        # Metered at arrival, as a provider's edge meters it: the latency and this loop's own
        # lateness after it must not bunch requests that arrived evenly spaced.
        decision = self._limiter.check(token, at=arrived)
        self.stats.authorised(tenant, limited=not decision.allowed)
        if not decision.allowed:
            message = "Too many requests, please slow down."
            return error_response(429, "too_many_requests", message, headers=decision.headers())
        response = await handler(request)
        response.headers.update(decision.headers())
        return response

    def _lister(self, resource: str) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            return self._list(request, resource)

        return handle

    def _detailer(self, resource: str) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            return self._detail(request, resource)

        return handle

    def _list(self, request: web.Request, resource: str) -> web.Response:
        query = request.query
        problems: dict[str, list[str]] = {}
        page = _positive(query, "page", 1, problems)
        per_page = min(_positive(query, "per_page", 15, problems), self.config.per_page_max)
        updated_after = _moment(query, "updated_after", problems)
        created_after = _moment(query, "created_after", problems)
        if problems:
            return error_response(422, "error", "alert.invalid_fields", fields=problems)
        language = _language(request)
        base = URL(self.api_url + PATHS[resource])

        def link(number: int) -> str:
            return str(base.with_query({**query, "page": str(number), "per_page": str(per_page)}))

        with self._store.lock:
            records = self._store.select(resource, updated_after=updated_after, created_after=created_after)
            if self._faults.repeats(resource):
                # A provider that ignores `page`: the same records forever, and no last page in sight.
                found = page_of(REPEATED_PAGES * per_page, page, per_page)
                items = records[:per_page]
            else:
                found = page_of(len(records), page, per_page)
                items = records[found.start : found.stop]
            block = found.block(link)
            block["count"] = len(items)
            shown = items if self.config.full_lists else [list_view(resource, r) for r in items]
            body = {"status": 200, "success": True, "data": [localize(r, language) for r in shown]}
            payload = orjson.dumps(body | {"pagination": block})
        return web.Response(body=payload, content_type="application/json")

    def _detail(self, request: web.Request, resource: str) -> web.Response:
        raw = request.match_info["id"]
        record_id = int(raw) if raw.isascii() and raw.isdigit() else None
        with self._store.lock:
            record = self._store.get(resource, record_id) if record_id is not None else None
            if record is None or self._faults.is_hidden(resource, record["id"]):
                return error_response(404, "not_found", f"The {_NOUNS[resource]} {raw} was not found.")
            payload = orjson.dumps({"status": 200, "success": True, "data": localize(record, _language(request))})
        return web.Response(body=payload, content_type="application/json")


def _positive(query: Any, name: str, default: int, problems: dict[str, list[str]]) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        problems[name] = [f"The {name} must be a positive integer."]
        return default
    return int(raw)


def _moment(query: Any, name: str, problems: dict[str, list[str]]) -> datetime | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        found = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        problems[name] = [f"The {name} must be an ISO 8601 date or date-time."]
        return None
    # A naive value is store time, as Salla's own dates are.
    return found if found.tzinfo is not None else found.replace(tzinfo=catalog.RIYADH)


def _language(request: web.Request) -> str:
    # English unless asked for Arabic: the example definition sends Accept-Language: en, and the
    # records in Sandbox.data are kept in English (a deviation from Salla's Arabic default).
    return "ar" if request.headers.get("Accept-Language", "").lower().startswith("ar") else "en"
