"""The provider branch of the error tree: what a failed provider call raises.

    ProviderError                  (miniapp_sync.errors)
    ├── ProviderHTTPError          the provider answered with an error status
    ├── ProviderConnectionError    no answer: connection error or timeout, after the last attempt
    ├── ProviderResponseError      an answer that is not JSON (an HTML login or WAF page)
    ├── AnswerTooLarge             an answer longer than the client reads (decompressed)
    ├── ResponseShapeError         JSON, but not the shape responseMapping describes
    └── PaginationLoopError        a page repeats the previous one: stop instead of spinning (D7)

Every message names the resource, the redacted URL (D30) and what was found; none carries a
header value or a credential.
"""

from __future__ import annotations

from typing import Final

from miniapp_sync.errors import ProviderError

__all__ = [
    "AnswerTooLarge",
    "PaginationLoopError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderResponseError",
    "ResponseShapeError",
]


class ProviderHTTPError(ProviderError):
    """The provider answered with a status that is not 2xx (after any retries)."""

    def __init__(
        self, message: str, *, status: int, url: str, resource: str | None, body_preview: str, attempts: int
    ) -> None:
        self.status = status
        self.url = url
        self.resource = resource
        self.body_preview = body_preview
        self.attempts = attempts
        super().__init__(message)


class ProviderConnectionError(ProviderError):
    """The provider could not be reached, or did not answer in time, on the last attempt."""

    def __init__(self, message: str, *, url: str, resource: str | None, cause: str, attempts: int) -> None:
        self.url = url
        self.resource = resource
        self.cause = cause
        self.attempts = attempts
        super().__init__(message)


class ProviderResponseError(ProviderError):
    """The provider answered 2xx with a body that is not JSON."""

    def __init__(self, message: str, *, url: str, resource: str | None, content_type: str, body_preview: str) -> None:
        self.url = url
        self.resource = resource
        self.content_type = content_type
        self.body_preview = body_preview
        super().__init__(message)


# The most one provider answer may hold, decompressed: 100 orders of 50 line items is about 5 MB, so
# this leaves pages of real stores ample room and bounds what a hostile or broken server can make us
# hold. A sample answer given to `map --input` is held to it too.
MAX_ANSWER_BYTES: Final = 64 * 2**20


class AnswerTooLarge(ProviderError):
    """The provider's answer (decompressed) is longer than the client reads: it is not retried."""

    def __init__(self, message: str, *, url: str, resource: str | None, limit: int) -> None:
        self.url = url
        self.resource = resource
        self.limit = limit
        super().__init__(message)


class ResponseShapeError(ProviderError):
    """A JSON response does not have the shape the resource's responseMapping describes."""

    def __init__(self, message: str, *, resource: str, page: int | None) -> None:
        self.resource = resource
        self.page = page
        super().__init__(message)


class PaginationLoopError(ProviderError):
    """A page repeats the previous page's records, cursor or next URL."""

    def __init__(self, message: str, *, resource: str, page: int) -> None:
        self.resource = resource
        self.page = page
        super().__init__(message)
