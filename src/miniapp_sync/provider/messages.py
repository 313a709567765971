"""What a provider call sends and gets back: URLs, answers, the refresh result, and how each call words its errors.

``ProviderClient`` (``provider/client.py``) does the sending; this module holds the values it
passes around, so pagination and response reading can name them without the client's machinery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from multidict import CIMultiDictProxy
from yarl import URL

from miniapp_sync.errors import ProviderError
from miniapp_sync.provider.errors import AnswerTooLarge, ProviderConnectionError, ProviderHTTPError

if TYPE_CHECKING:
    from miniapp_sync.provider.client import ProviderClient

Method = Literal["GET", "POST"]


@dataclass(frozen=True, slots=True)
class Refreshed:
    """What a refresh produced: the headers to send from now on, and every secret value it received."""

    headers: Mapping[str, str]
    secrets: tuple[str, ...] = ()


_HINTS: Final = {
    401: "the provider rejected the credentials; reconnect the installation or refresh its token",
    403: "the token lacks a scope for this endpoint, or the provider blocked the store",
    404: "check the endpoint URL and sync.baseUrl",
}


@dataclass(frozen=True, slots=True)
class Response:
    """A decoded provider answer. ``url`` is the real URL: redact it before showing it."""

    status: int
    headers: CIMultiDictProxy[str]
    data: Any
    url: str
    elapsed: float
    attempts: int


@dataclass(frozen=True, slots=True)
class RawResponse:
    """A successful answer whose body is not decoded yet; ``ProviderClient.decode`` turns it into a Response."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str
    content_type: str
    elapsed: float
    attempts: int
    call: Call


def join_url(base_url: str | None, url: str) -> str:
    """Join an endpoint URL to the base URL with exactly one slash; absolute URLs stay as they are."""
    if url.startswith(("http://", "https://")):
        return url
    if not base_url:
        raise ProviderError(f"endpoint URL {url!r} is relative, but sync.baseUrl is not set")
    return f"{base_url.rstrip('/')}/{url.lstrip('/')}" if url else base_url


def _query_value(value: Any) -> str | list[str] | None:
    if value is None:
        return None
    if isinstance(value, bool):  # yarl refuses bools; providers expect JSON spelling
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return str(value)


def build_url(base_url: str | None, url: str, params: Mapping[str, Any] | None = None) -> URL:
    """Return the request URL: joined to the base, its own query kept, ``params`` merged over it."""
    target = URL(join_url(base_url, url))
    if params:
        merged = {k: v for k, v in ((k, _query_value(v)) for k, v in params.items()) if v is not None}
        target = target.update_query(merged)
    return target


def origin_key(url: URL) -> tuple[str, str | None, int | None]:
    """Return what identifies a URL's origin: scheme, host and port."""
    return url.scheme, url.raw_host, url.port


class Call:
    """One logical request (all its attempts): where it goes and how to word its errors."""

    __slots__ = ("client", "guarded", "method", "resource", "target", "where")

    def __init__(
        self, method: Method, target: URL, resource: str | None, what: str, client: ProviderClient, *, guarded: bool
    ) -> None:
        self.method = method
        self.target = target
        self.guarded = guarded
        self.resource = resource
        self.client = client
        self.where = f"{resource} {what}: " if resource else ""

    @property
    def url(self) -> str:
        # Redacted when a message is written, not when the call began: a token refreshed since
        # has joined the redaction set by then (D31b).
        return self.client.redact_url(self.target)

    def connection_error(self, cause: str, attempts: int) -> ProviderConnectionError:
        return ProviderConnectionError(
            f"{self.where}{self.method} {self.url} failed after {attempts} attempt{'s' * (attempts != 1)}: {cause}",
            url=self.url,
            resource=self.resource,
            cause=cause,
            attempts=attempts,
        )

    def wait_refused(
        self, status: int, headers: Mapping[str, str], delay: float, cap: float, attempts: int
    ) -> ProviderHTTPError:
        asked = "; ".join(
            f"{name}: {headers[name]}"
            for name in ("Retry-After", "X-RateLimit-Reset")
            if name in headers  # a CIMultiDictProxy: any spelling of the name
        )
        message = (
            f"{self.where}{self.method} {self.url} answered {status} and asked to wait {delay:.0f} s ({asked}), "
            f"longer than the {cap:.0f} s this deployment waits (hint: retry later, or raise the cap with "
            "--max-retry-after / MINIAPP_SYNC_MAX_RETRY_AFTER)"
        )
        return ProviderHTTPError(
            message, status=status, url=self.url, resource=self.resource, body_preview="", attempts=attempts
        )

    def too_large(self, status: int, limit: int) -> AnswerTooLarge:
        message = (
            f"{self.where}{self.method} {self.url} answered {status} with more than {limit:,} bytes "
            "(decompressed), the most this client reads from one answer (hint: ask for smaller pages: "
            "pagination.defaultLimit)"
        )
        return AnswerTooLarge(message, url=self.url, resource=self.resource, limit=limit)

    def http_error(self, status: int, preview: str, attempts: int) -> ProviderHTTPError:
        message = f"{self.where}{self.method} {self.url} answered {status}"
        if attempts > 1:
            message += f" after {attempts} attempts"
        if preview:
            message += f"; body: {preview}"
        if status in _HINTS:
            message += f" (hint: {_HINTS[status]})"
        return ProviderHTTPError(
            message, status=status, url=self.url, resource=self.resource, body_preview=preview, attempts=attempts
        )
