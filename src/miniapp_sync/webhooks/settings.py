"""How the webhook runtime is tuned: body limit, group commit, workers, retries and retention."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WebhookSettings:
    """Every knob of the receiver, the processor and trigger delivery, with production defaults."""

    max_body_bytes: int = 1 << 20  # larger deliveries get 413 (Salla orders are ~10-50 kB)
    commit_max_batch: int = 512  # deliveries per inbox transaction at most
    commit_max_delay: float = 0.001  # seconds a commit waits for company once a delivery is waiting
    workers: int = 4  # installations processed at the same time
    # Inbox rows per processing transaction at most. It holds the writer lock that acknowledgements
    # wait for, ~0.1 ms a row plus its commit (an fsync, ~2 ms): 64 rows hold it ~8 ms, and halve
    # the lock time a delivery costs against 16 (fewer commits); measured in the commit message.
    batch: int = 64
    # Seconds the processor waits, once caught up, before processing the few rows it claimed: a
    # steady rate then fills bigger batches (fewer commits), for that much more processing lag.
    gather: float = 0.025
    # Acknowledgements first: during a burst (more than ``yield_rate`` deliveries/s, ``yield_crowd``
    # or more waiting for a commit together) the processor holds its next batch, up to
    # ``yield_wait`` seconds (so that it still moves).
    yield_crowd: int = 16
    yield_rate: float = 1500.0
    yield_wait: float = 1.0
    max_attempts: int = 5  # processing attempts before a delivery is dead-lettered
    backoff: float = 1.0  # seconds before the first retry; doubles each time
    backoff_cap: float = 300.0
    delivery_attempts: int = 8  # trigger POSTs before a delivery is given up
    delivery_timeout: float = 10.0  # seconds per trigger POST
    delivery_concurrency: int = 8
    retention: float = 7 * 86_400.0  # finished inbox rows (and their dedupe keys, D26) are kept this long
    rejections_per_hour: int = 1000  # rejection-trail rows per ns and clock hour at most (D24a)
    record_samples: str | None = None  # a folder: write each verified event's body as <event>.json

    def delay(self, attempt: int) -> float:
        """Return how long to wait after the ``attempt``-th failure (1-based): exponential, capped."""
        return float(min(self.backoff_cap, self.backoff * 2 ** max(0, attempt - 1)))
