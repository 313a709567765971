"""Talk to a tenant's provider: the one place a ProviderClient is assembled from a definition.

A bulk sync (``sync/engine.py``) and the submission checklist (``submission/checks.py``) both
reach the provider the same way: the base URL built from the tenant's context and checked
against private ranges when a tenant value shaped it (D31), the rendered ``sync.headers``, the
definition's timeout, the origins the definition itself names (trusted), and one redaction set
(D30). What differs between them is passed in: the clock, the rate limiter, the retry policy,
the HTTP session and, for a sync, what to do on a 401 (D11).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import aiohttp

from miniapp_sync.clock import Clock
from miniapp_sync.definition.lint import SECRET_NAME
from miniapp_sync.definition.model import Definition
from miniapp_sync.network import Egress, written_origins
from miniapp_sync.provider.client import ProviderClient
from miniapp_sync.provider.messages import Refreshed
from miniapp_sync.provider.ratelimit import RateLimiter
from miniapp_sync.provider.retry import RetryPolicy
from miniapp_sync.templating import Context, render_headers


def secret_values(definition: Definition, credentials: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    """Return the values nothing may show (D30): every credential, and sensitive or secret-named config."""
    values = [str(v) for v in credentials.values() if isinstance(v, str | int) and str(v)]
    sensitive = set(definition.auth.sensitive_keys) if definition.auth else set()
    # client_id is public by design (it travels in the consent URL), whatever a name test says.
    values += [
        v
        for k, v in config.items()
        if isinstance(v, str) and v and (k in sensitive or SECRET_NAME.search(k)) and k != "client_id"
    ]
    return values


def endpoint_urls(definition: Definition) -> list[str]:
    """Return every list and details URL the definition's resources name."""
    assert definition.sync is not None
    endpoints = [(r.endpoints.list, r.endpoints.details) for r in definition.sync.resources.values()]
    return [e.url for pair in endpoints for e in pair if e is not None]


async def provider_client(
    definition: Definition,
    context: Context,
    *,
    egress: Egress,
    session: aiohttp.ClientSession,
    clock: Clock,
    limiter: RateLimiter,
    retry: RetryPolicy,
    secrets: Iterable[str],
    on_unauthorized: Callable[[], Awaitable[Refreshed]] | None = None,
) -> ProviderClient:
    """Return a client of the definition's provider for this context (its sync block is required).

    Secrets received later join the client's redaction through ``on_unauthorized``'s answer (D31b).
    """
    sync = definition.sync
    assert sync is not None
    base = egress.target(sync.base_url or "", context, "sync.baseUrl")
    if egress.guards(base):
        await egress.check(base.url, what="sync.baseUrl")  # built from tenant input (D31)
    return ProviderClient(
        base_url=base.url or None,
        headers=render_headers(sync.headers, context, "sync.headers"),
        timeout_ms=sync.sync_configuration.timeout,
        limiter=limiter,
        retry=retry,
        clock=clock,
        session=session,
        secrets=secrets,
        on_unauthorized=on_unauthorized,
        egress=egress,
        trusted=written_origins(base, endpoint_urls(definition)),
    )
