"""Prometheus metrics of the webhook runtime, on a registry of their own (one per process).

A process exports the series of the roles it has: ``serve`` receives (deliveries answered, acks,
rejections, group commits) and, on SQLite, processes too; a worker only processes (inbox rows,
lag, backlog, dead letters, trigger deliveries). Series of a role a process lacks are kept off
its registry, so its scrape never shows another process's figures as zeros.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from miniapp_sync.store.health import Gauges
from miniapp_sync.store.webhook_tables import INBOX_STATUSES

_SECONDS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_SIZES: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
DEAD_LETTER_KINDS: Final = ("record", "webhook")
# The receiver's refusals (outcome → reason); the receiver's rejection trail adds its reasons here.
REJECTIONS: Final = {"unauthorized": "bad_signature", "too_large": "too_large", "unknown_miniapp": "unknown_miniapp"}


class WebhookMetrics:
    """Counters and histograms for deliveries, group commits, processing and trigger deliveries."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, receiving: bool = True, processing: bool = True
    ) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry if receiving else CollectorRegistry()  # a role's series, exported only by its owner
        self._deliveries = Counter(
            "miniapp_sync_webhook_deliveries", "Webhook deliveries answered, by MiniApp and outcome.",
            ["ns", "outcome"], registry=r,
        )  # fmt: skip
        self._ack = Histogram(
            "miniapp_sync_webhook_ack_seconds", "Time from a delivery's arrival to its answer.",
            ["ns"], buckets=_SECONDS, registry=r,
        )  # fmt: skip
        self._secrets = Counter(
            "miniapp_sync_webhook_secret_matches", "Verified deliveries by the position of the secret that matched "
            "(a rotated-out secret still matching at position 1 means it cannot be retired yet).",
            ["ns", "position"], registry=r,
        )  # fmt: skip
        self._rejections = Counter(
            "miniapp_sync_webhook_rejections", "Deliveries refused, by MiniApp and reason.",
            ["ns", "reason"], registry=r,
        )  # fmt: skip
        self._batch = Histogram(
            "miniapp_sync_inbox_commit_batch_size", "Deliveries per inbox transaction (group commit).",
            buckets=_SIZES, registry=r,
        )  # fmt: skip
        self._commit = Histogram(
            "miniapp_sync_inbox_commit_seconds", "Duration of one inbox transaction, fsync included.",
            buckets=_SECONDS, registry=r,
        )  # fmt: skip
        r = self.registry if processing else CollectorRegistry()
        self._processed = Counter(
            "miniapp_sync_inbox_processed", "Inbox rows processed, by MiniApp and outcome "
            "(done, retried, dead_lettered).",
            ["ns", "outcome"], registry=r,
        )  # fmt: skip
        self._lag = Histogram(
            "miniapp_sync_inbox_lag_seconds", "Time from a delivery's arrival to the commit of its processing.",
            buckets=_SECONDS, registry=r,
        )  # fmt: skip
        self._triggers = Counter(
            "miniapp_sync_trigger_deliveries", "Trigger event POSTs to subscribers, by MiniApp and outcome "
            "(delivered, retried, failed).",
            ["ns", "outcome"], registry=r,
        )  # fmt: skip
        self._rows = Gauge("miniapp_sync_inbox_rows", "Inbox rows by state.", ["status"], registry=r)
        self._backlog = Gauge(
            "miniapp_sync_inbox_backlog", "Deliveries stored and not yet processed.", ["ns"], registry=r
        )
        self._oldest = Gauge(
            "miniapp_sync_inbox_oldest_unprocessed_seconds", "Age of the oldest delivery not yet processed "
            "(0 when none waits).",
            ["ns"], registry=r,
        )  # fmt: skip
        self._dead = Gauge(
            "miniapp_sync_dead_letters", "Dead letters not yet replayed, by MiniApp and kind (record, webhook).",
            ["ns", "kind"], registry=r,
        )  # fmt: skip
        self.owns_gauges = processing
        # Label lookups cost more than the increment; children are kept per label set.
        self._delivery_children: dict[tuple[str, str], Counter] = {}
        self._ack_children: dict[str, Histogram] = {}
        self._secret_children: dict[tuple[str, int], Counter] = {}

    def answered(self, ns: str, outcome: str, seconds: float) -> None:
        """Count an answered delivery and how long the answer took."""
        counter = self._delivery_children.get((ns, outcome))
        if counter is None:
            counter = self._delivery_children[(ns, outcome)] = self._deliveries.labels(ns, outcome)
        counter.inc()
        if outcome in REJECTIONS:
            self.rejected(ns, REJECTIONS[outcome])
        histogram = self._ack_children.get(ns)
        if histogram is None:
            histogram = self._ack_children[ns] = self._ack.labels(ns)
        histogram.observe(seconds)

    def rejected(self, ns: str, reason: str) -> None:
        """Count a refused delivery by its reason."""
        self._rejections.labels(ns, reason).inc()

    def secret_matched(self, ns: str, position: int) -> None:
        """Count which of several rotated secrets verified a delivery."""
        counter = self._secret_children.get((ns, position))
        if counter is None:
            counter = self._secret_children[(ns, position)] = self._secrets.labels(ns, str(position))
        counter.inc()

    def committed(self, size: int, seconds: float) -> None:
        """Record one group commit."""
        self._batch.observe(size)
        self._commit.observe(seconds)

    def processed(self, ns: str, outcome: str, count: int = 1, lags: tuple[float, ...] = ()) -> None:
        """Count processed inbox rows, and the lag of those that are done."""
        self._processed.labels(ns, outcome).inc(count)
        for lag in lags:
            self._lag.observe(lag)

    def trigger(self, ns: str, outcome: str, count: int = 1) -> None:
        """Count trigger POSTs of one outcome."""
        self._triggers.labels(ns, outcome).inc(count)

    def render(self, gauges: Gauges | None, now: float, namespaces: Iterable[str] = ()) -> bytes:
        """Return the Prometheus text exposition, with the store's figures read for this scrape (at ``now``).

        Every MiniApp in ``namespaces`` (those served) reads 0 where the store has nothing, so a
        backlog that empties drops to 0 rather than keeping its last value or vanishing.
        """
        if gauges is not None:
            for status in INBOX_STATUSES:
                self._rows.labels(status).set(gauges.rows.get(status, 0))
            for ns in {*namespaces, *gauges.backlog}:
                self._backlog.labels(ns).set(gauges.backlog.get(ns, 0))
                oldest = gauges.oldest.get(ns)
                self._oldest.labels(ns).set(max(0.0, now - oldest) if oldest is not None else 0.0)
            kinds = {(ns, kind) for ns in namespaces for kind in DEAD_LETTER_KINDS}
            for labels in {*kinds, *gauges.dead_letters}:
                self._dead.labels(*labels).set(gauges.dead_letters.get(labels, 0))
        return generate_latest(self.registry)
