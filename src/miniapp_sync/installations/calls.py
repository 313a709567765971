"""Run the auth block's request templates (get_token, refresh_token, userDetails, registrationRequests)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
import orjson

from miniapp_sync.definition.model import Request
from miniapp_sync.definition.rules import MISSING
from miniapp_sync.errors import InstallationError, preview
from miniapp_sync.mapping.paths import compile_path
from miniapp_sync.network import REFUSAL, Egress, refused
from miniapp_sync.templating import Context, render, render_headers

SECRET_PARAMS = ("token", "secret", "password", "key", "code", "signature")


@dataclass(frozen=True)
class CallResult:
    """What a request produced: its JSON, the values its object mapping persists, and chained values."""

    data: Any
    persisted: dict[str, Any] = field(default_factory=dict)
    chained: dict[str, Any] = field(default_factory=dict)


def redact_url(url: str, secrets: Iterable[str] = ()) -> str:
    """Hide secret-looking query values and known secret strings in a URL (D30)."""
    parts = urlsplit(url)
    query = [(k, "***" if any(s in k.lower() for s in SECRET_PARAMS) else v) for k, v in parse_qsl(parts.query)]
    text = urlunsplit(parts._replace(query=urlencode(query, safe="*")))
    return redact(text, secrets)


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every known secret value in text with ***."""
    for secret in secrets:
        if isinstance(secret, str) and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def extract(mapping: Any, data: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Apply a request's mapping: an object persists its values, a [{name, value}] list chains them."""
    persisted: dict[str, Any] = {}
    chained: dict[str, Any] = {}
    if isinstance(mapping, dict):
        for key, source in mapping.items():
            value = _value(source, data)
            if value is not MISSING:
                persisted[key] = value
    elif isinstance(mapping, list):
        for item in mapping:
            value = _value(item.get("value"), data)
            if isinstance(item.get("name"), str) and value is not MISSING:
                chained[item["name"]] = value
    return persisted, chained


def _value(source: Any, data: Any) -> Any:
    # '$…' reads the response; anything else is a literal (WooCommerce's `connected: 'true'`).
    if isinstance(source, str) and source.startswith("$"):
        return compile_path(source).get(data)
    return source


async def call(
    session: aiohttp.ClientSession,
    request: Request,
    context: Context,
    *,
    where: str,
    egress: Egress,
    timeout: float = 30.0,
    secrets: Iterable[str] = (),
) -> CallResult:
    """Render and send one request template; map its JSON answer (an error names where and what).

    A URL built from tenant values goes through the egress guard's own session (D31), so neither
    its address nor a redirect it answers with can reach a private network.
    """
    target = egress.target(request.url, context, f"{where}.url")
    guarded = egress.guards(target)
    if guarded:
        await egress.check(target.url, what=f"{where}.url")
    params = {
        k: _as_str(v, f"{where}.queryParams.{k}") for k, v in render(request.query_params, context, where).items()
    }
    headers = render_headers(request.headers, context, f"{where}.headers")
    body = render(request.body, context, f"{where}.body") if request.body is not None else None
    kwargs: dict[str, Any] = {"params": params, "headers": headers}
    if body is not None and request.body_type == "json":
        kwargs["data"] = orjson.dumps(body)
        headers.setdefault("Content-Type", "application/json")
    elif body is not None:
        kwargs["data"] = {k: _as_str(v, f"{where}.body.{k}") for k, v in body.items()}
    shown = redact_url(target.url, secrets)
    own = egress.session() if guarded else None
    try:
        async with (own or session).request(
            request.method, target.url, timeout=aiohttp.ClientTimeout(total=timeout), **kwargs
        ) as response:
            raw = await response.read()
            status = response.status
    except (TimeoutError, aiohttp.ClientError) as exc:
        if refused(exc):
            reason = REFUSAL
        elif isinstance(exc, asyncio.TimeoutError):
            reason = "timed out"
        else:
            reason = redact(str(exc) or type(exc).__name__, secrets)
        raise InstallationError(f"{where}: {request.method} {shown} failed: {reason}") from None
    finally:
        if own is not None:
            await own.close()
    data = _decode(raw)
    if status >= 400:
        detail = redact(preview(data if data is not MISSING else raw.decode(errors="replace"), 120), secrets)
        raise InstallationError(f"{where}: {request.method} {shown} answered {status}: {detail}")
    if data is MISSING:
        data = None
    persisted, chained = extract(request.mapping, data)
    return CallResult(data, persisted, chained)


def _decode(raw: bytes) -> Any:
    if not raw.strip():
        return MISSING
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return MISSING


def _as_str(value: Any, where: str) -> str:
    if isinstance(value, dict | list):
        raise InstallationError(f"{where}: expected text, found {preview(value)}")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
