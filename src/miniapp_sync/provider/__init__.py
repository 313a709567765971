"""The HTTP side of bulk sync: client, rate limiter, retry policy, paginators and details.

Names load on first use (``miniapp_sync/exports.py``): ``provider.redaction`` or
``provider.ratelimit`` alone do not bring aiohttp.
"""

from typing import TYPE_CHECKING

from miniapp_sync.exports import lazy_exports

if TYPE_CHECKING:
    from miniapp_sync.provider.client import ProviderClient
    from miniapp_sync.provider.details import DetailResult, fetch_details
    from miniapp_sync.provider.errors import (
        AnswerTooLarge,
        PaginationLoopError,
        ProviderConnectionError,
        ProviderHTTPError,
        ProviderResponseError,
        ResponseShapeError,
    )
    from miniapp_sync.provider.messages import Refreshed, Response, build_url, join_url
    from miniapp_sync.provider.pagination import Page, pages
    from miniapp_sync.provider.ratelimit import RateLimiter, limiter_for
    from miniapp_sync.provider.redaction import Redactor
    from miniapp_sync.provider.retry import RetryPolicy

__getattr__ = lazy_exports(
    __name__,
    {
        "client": ("ProviderClient",),
        "messages": ("Refreshed", "Response", "build_url", "join_url"),
        "details": ("DetailResult", "fetch_details"),
        "errors": (
            "AnswerTooLarge",
            "PaginationLoopError",
            "ProviderConnectionError",
            "ProviderHTTPError",
            "ProviderResponseError",
            "ResponseShapeError",
        ),
        "pagination": ("Page", "pages"),
        "ratelimit": ("RateLimiter", "limiter_for"),
        "redaction": ("Redactor",),
        "retry": ("RetryPolicy",),
    },
)

__all__ = [
    "AnswerTooLarge",
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
