"""The sandbox's OAuth 2.0 authorization server, behaving like accounts.salla.sa.

Authorization codes are single-use and expire after ten minutes. Refresh tokens are single-use
too: each refresh issues a new pair and the old access token stops working; presenting a used
refresh token again answers ``invalid_grant`` and revokes the pair issued from it, as Salla does.
"""

from __future__ import annotations

import base64
import binascii
import random
import threading
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
from aiohttp import web
from yarl import URL

from miniapp_sync.clock import Clock
from miniapp_sync.sandbox import catalog
from miniapp_sync.sandbox.config import SandboxConfig
from miniapp_sync.sandbox.responses import json_response, unauthorized

EXPIRES_IN: Final = 1_209_600  # 14 days, as Salla issues them
DEFAULT_SCOPE: Final = "offline_access products.read customers.read orders.read carts.read"
_CODE_LIFETIME: Final = 600.0

TokenState = Literal["valid", "expired", "invalid"]


@dataclass
class _Grant:
    redirect_uri: str
    scope: str
    expires_at: float


@dataclass
class _Pair:
    access: str
    refresh: str
    scope: str
    expires_at: float  # monotonic
    tenant: int = 0  # the store the pair was issued for (SandboxConfig.tenants)


def bearer(request: web.Request) -> str | None:
    """Return the bearer token of a request, or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return json_response({"error": error, "error_description": description}, status, {"Cache-Control": "no-store"})


class OAuthServer:
    """Issues and checks the sandbox's tokens; ``expire_all`` may be called from any thread."""

    def __init__(self, config: SandboxConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._rng = random.Random(f"{config.seed}:oauth")
        self._codes: dict[str, _Grant] = {}
        self._by_access: dict[str, _Pair] = {}
        self._by_refresh: dict[str, _Pair] = {}
        self._expired: set[str] = set()
        self._rotated: dict[str, str] = {}  # used refresh token → the one issued in its place
        for tenant in range(config.tenants):
            access, refresh = config.tokens(tenant)
            self._keep(_Pair(access, refresh, DEFAULT_SCOPE, clock.monotonic() + EXPIRES_IN, tenant))

    def _keep(self, pair: _Pair) -> None:
        self._by_access[pair.access] = pair
        self._by_refresh[pair.refresh] = pair

    def _new_token(self, kind: str) -> str:
        return f"ory_{kind}_sandbox-{self._rng.getrandbits(96):024x}"

    def _issue(self, scope: str, tenant: int = 0) -> _Pair:
        expires = self._clock.monotonic() + EXPIRES_IN
        pair = _Pair(self._new_token("at"), self._new_token("rt"), scope, expires, tenant)
        self._keep(pair)
        return pair

    def state(self, token: str | None) -> TokenState:
        """Return whether an access token is valid, expired, or unknown."""
        if token is None:
            return "invalid"
        with self._lock:
            if token in self._expired:
                return "expired"
            pair = self._by_access.get(token)
            if pair is None:
                return "invalid"
            return "valid" if self._clock.monotonic() < pair.expires_at else "expired"

    def tenant(self, token: str | None) -> int | None:
        """Return the store an access token was issued for (valid or not), or None for an unknown token."""
        with self._lock:
            pair = self._by_access.get(token or "")
            return None if pair is None else pair.tenant

    def expire_all(self) -> None:
        """Make every live access token answer 401 as expired; their refresh tokens still work."""
        with self._lock:
            self._expired.update(self._by_access)

    def add_routes(self, app: web.Application) -> None:
        """Add /oauth2/auth, /oauth2/token and /oauth2/user/info."""
        app.router.add_get("/oauth2/auth", self.authorize)
        app.router.add_post("/oauth2/token", self.token)
        app.router.add_get("/oauth2/user/info", self.user_info)

    async def authorize(self, request: web.Request) -> web.Response:
        """Approve at once and redirect back with a one-time code (there is no login page)."""
        query = request.query
        if query.get("client_id") != self._config.client_id:
            return _oauth_error(400, "invalid_client", "unknown client_id")
        redirect_uri = query.get("redirect_uri")
        if not redirect_uri:
            return _oauth_error(400, "invalid_request", "redirect_uri is required")
        back: dict[str, str] = {"state": query["state"]} if "state" in query else {}
        if query.get("response_type") != "code":
            back["error"] = "unsupported_response_type"
            raise web.HTTPFound(URL(redirect_uri).update_query(back))
        code = f"sandbox-code-{self._rng.getrandbits(64):016x}"
        with self._lock:
            scope = query.get("scope") or DEFAULT_SCOPE
            expires = self._clock.monotonic() + _CODE_LIFETIME
            self._codes[code] = _Grant(redirect_uri, scope, expires)
        raise web.HTTPFound(URL(redirect_uri).update_query({"code": code, **back}))

    async def token(self, request: web.Request) -> web.Response:
        """Exchange an authorization code or a refresh token for a new token pair."""
        params = await _params(request)
        if params is None:
            return _oauth_error(400, "invalid_request", "the body must be JSON or form-encoded")
        client_id, client_secret = _client_credentials(request, params)
        if client_id != self._config.client_id or client_secret != self._config.client_secret:
            return _oauth_error(401, "invalid_client", "client authentication failed")
        grant_type = params.get("grant_type")
        with self._lock:
            if grant_type == "authorization_code":
                result = self._exchange_code(params)
            elif grant_type == "refresh_token":
                result = self._refresh(params.get("refresh_token"))
            else:
                return _oauth_error(400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
        if isinstance(result, str):
            return _oauth_error(400, "invalid_grant", result)
        body = {
            "access_token": result.access,
            "refresh_token": result.refresh,
            "expires_in": EXPIRES_IN,
            "token_type": "bearer",
            "scope": result.scope,
        }
        return json_response(body, headers={"Cache-Control": "no-store"})

    def _exchange_code(self, params: dict[str, str]) -> _Pair | str:
        grant = self._codes.pop(params.get("code", ""), None)  # popped: a code works once
        if grant is None:
            return "the authorization code is unknown or was already used"
        if self._clock.monotonic() >= grant.expires_at:
            return "the authorization code has expired"
        if "redirect_uri" in params and params["redirect_uri"] != grant.redirect_uri:
            return "redirect_uri does not match the authorization request"
        return self._issue(grant.scope)

    def _refresh(self, token: str | None) -> _Pair | str:
        pair = self._by_refresh.pop(token or "", None)
        if pair is None:
            if token in self._rotated:
                self._revoke_descendant(token)
                return "the refresh token was already used; the tokens issued from it are revoked"
            return "the refresh token is unknown"
        self._by_access.pop(pair.access, None)
        self._expired.discard(pair.access)
        fresh = self._issue(pair.scope, pair.tenant)  # a refresh stays with its store
        self._rotated[pair.refresh] = fresh.refresh
        return fresh

    def _revoke_descendant(self, token: str) -> None:
        # Reuse means the token leaked or two clients raced: revoke the live pair it led to.
        while token in self._rotated:
            token = self._rotated[token]
        pair = self._by_refresh.pop(token, None)
        if pair is not None:
            self._by_access.pop(pair.access, None)

    async def user_info(self, request: web.Request) -> web.Response:
        """Return the merchant user of a valid access token (its store's merchant)."""
        token = bearer(request)
        state = self.state(token)
        if state != "valid":
            return unauthorized("The access token is expired." if state == "expired" else "Invalid access token.")
        merchant = {"id": self._config.merchant(self.tenant(token) or 0), **catalog.MERCHANT}
        return json_response({"status": 200, "success": True, "data": {**catalog.USER, "merchant": merchant}})


async def _params(request: web.Request) -> dict[str, str] | None:
    if request.content_type == "application/json":
        try:
            found: Any = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return None
        return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else None
    form = await request.post()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _client_credentials(request: web.Request, params: dict[str, str]) -> tuple[str | None, str | None]:
    # RFC 6749 §2.3.1 allows HTTP Basic or body parameters; Salla's docs show the body.
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        return user, password
    return params.get("client_id"), params.get("client_secret")
