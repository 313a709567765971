"""Prometheus series of bulk syncs: runs, records, provider requests, retries, 429s, rate-budget waits.

Labelled by MiniApp and resource, never by tenant or installation (one series per tenant would
grow without bound). The engine counts per run in its reports already; these series are fed from
a resource's report once it is done, so the hot path pays nothing per record or request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry, Counter, Histogram

if TYPE_CHECKING:
    from miniapp_sync.sync.reports import ResourceReport

# A resource's run takes from a fraction of a second (a few pages) to hours (a large catalogue).
_RUN_SECONDS: Final = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0)
RECORD_OUTCOMES: Final = ("fetched", "created", "updated", "unchanged", "stale", "rejected", "deleted")


class SyncMetrics:
    """The sync engine's series, on the registry of the process that exports them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self._runs = Counter(
            "miniapp_sync_sync_runs", "Finished sync runs, by MiniApp and status.", ["ns", "status"], registry=r
        )
        self._records = Counter(
            "miniapp_sync_sync_records", "Records of bulk syncs by outcome "
            f"({', '.join(RECORD_OUTCOMES)}).",
            ["ns", "resource", "outcome"], registry=r,
        )  # fmt: skip
        self._requests = Counter(
            "miniapp_sync_provider_requests", "Provider API requests by status class "
            "(2xx, 3xx, 4xx, 5xx; error when no answer came).",
            ["ns", "resource", "status_class"], registry=r,
        )  # fmt: skip
        self._retries = Counter(
            "miniapp_sync_provider_retries", "Provider requests retried (429, 5xx, timeouts).",
            ["ns", "resource"], registry=r,
        )  # fmt: skip
        self._throttled = Counter(
            "miniapp_sync_provider_throttled", "Provider answers 429 Too Many Requests.",
            ["ns", "resource"], registry=r,
        )  # fmt: skip
        self._waited = Counter(
            "miniapp_sync_rate_budget_wait_seconds", "Seconds requests waited for the installation's rate budget.",
            ["ns", "resource"], registry=r,
        )  # fmt: skip
        self._duration = Histogram(
            "miniapp_sync_sync_resource_seconds", "Duration of one resource's bulk sync.",
            ["ns", "resource"], buckets=_RUN_SECONDS, registry=r,
        )  # fmt: skip

    def resource_done(self, ns: str, report: ResourceReport) -> None:
        """Count what one resource's run did."""
        key = report.resource
        for outcome in RECORD_OUTCOMES:
            count = getattr(report, outcome)
            if count:
                self._records.labels(ns, key, outcome).inc(count)
        for status_class, count in report.statuses.items():
            self._requests.labels(ns, key, status_class).inc(count)
        self._retries.labels(ns, key).inc(report.retries)
        self._throttled.labels(ns, key).inc(report.throttled)
        self._waited.labels(ns, key).inc(report.rate_wait_seconds)
        self._duration.labels(ns, key).observe(report.seconds)

    def run_done(self, ns: str, status: str) -> None:
        """Count a finished run."""
        self._runs.labels(ns, status).inc()
