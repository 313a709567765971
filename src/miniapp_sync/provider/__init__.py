"""The HTTP side of bulk sync: client, rate limiter, retry policy, paginators and details."""

from miniapp_sync.provider.client import ProviderClient, Refreshed, Response, build_url, join_url
from miniapp_sync.provider.details import DetailResult, fetch_details
from miniapp_sync.provider.errors import (
    PaginationLoopError,
    ProviderConnectionError,
    ProviderHTTPError,
    ProviderResponseError,
    ResponseShapeError,
)
from miniapp_sync.provider.pagination import Page, pages
from miniapp_sync.provider.ratelimit import RateLimiter, limiter_for
from miniapp_sync.provider.redaction import Redactor
from miniapp_sync.provider.retry import RetryPolicy

__all__ = [
    "DetailResult",
    "Page",
    "PaginationLoopError",
    "ProviderClient",
    "ProviderConnectionError",
    "ProviderHTTPError",
    "ProviderResponseError",
    "RateLimiter",
    "Redactor",
    "Refreshed",
    "Response",
    "ResponseShapeError",
    "RetryPolicy",
    "build_url",
    "fetch_details",
    "join_url",
    "limiter_for",
    "pages",
]
