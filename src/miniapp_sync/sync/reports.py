"""What a bulk run did: one report per resource, the run's report, and the progress callback's shape."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from miniapp_sync.errors import MiniAppSyncError
    from miniapp_sync.provider.redaction import Redactor
    from miniapp_sync.store import RunStatus


@dataclass
class ResourceReport:
    """What one resource's run did; the CLI's summary table and the run's stats."""

    resource: str
    content_type: str
    fetched: int = 0
    pages: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    rejected: int = 0
    warnings: int = 0
    deleted: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    statuses: dict[str, int] = field(default_factory=dict)  # provider answers by status class
    rate_wait_seconds: float = 0.0
    # The requests/s the installation's budget was paced at: rateLimitPerSecond less the limiter's
    # safety margin (provider.ratelimit.MARGIN), so an operator sees what the margin leaves unused.
    paced_per_second: float | None = None
    seconds: float = 0.0
    resumed_from: dict[str, Any] | None = None
    error: str | None = None
    # The error as data: the list page and redacted URL it failed at, the status, the message.
    failure: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return dict(self.__dict__)


@dataclass
class RunReport:
    """A whole run: its id and status, and one report per resource."""

    run_id: str
    installation_id: str
    status: RunStatus = "running"
    resources: dict[str, ResourceReport] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """Return True when a resource failed."""
        return any(r.error for r in self.resources.values())

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "runId": self.run_id,
            "installationId": self.installation_id,
            "status": self.status,
            "resources": {k: r.as_dict() for k, r in self.resources.items()},
        }


Progress = Callable[[ResourceReport, int | None], None]  # (report so far, total records if known)


def failure_of(exc: MiniAppSyncError, message: str, redactor: Redactor) -> dict[str, Any]:
    """Return what a resource failed on as data: the list page, the redacted URL and status when known."""
    url = getattr(exc, "url", None)
    return {
        "page": getattr(exc, "page", None),
        "url": redactor.url(url) if isinstance(url, str) else None,  # redacted by the client, and again here
        "status": getattr(exc, "status", None),
        "message": message,
    }
