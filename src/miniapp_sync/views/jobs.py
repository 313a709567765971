"""Jobs as views (D36, D37): what an enqueue answered, and what a job came to (its run, or its replay's report)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from miniapp_sync.views.deliveries import DeliveryReplayView
from miniapp_sync.views.runs import RunView

if TYPE_CHECKING:
    from miniapp_sync.jobs import Enqueued


@dataclass(frozen=True, slots=True)
class JobView:
    """A sync job as its enqueue answered: its id (null when a waiting twin covers it), what it syncs, its run.

    The run is null until a worker starts the job; ``GET /api/jobs/{id}`` leads to it (D36).
    """

    job_id: str | None
    kind: str
    resource: str | None
    duplicate: bool
    run_id: str | None

    @classmethod
    def of(cls, receipt: Enqueued) -> JobView:
        """Return the view of an enqueue's receipt: a job has no run until a worker starts it."""
        return cls(receipt.id, receipt.job.kind, receipt.job.resource or None, receipt.duplicate, None)


@dataclass(frozen=True, slots=True)
class JobRunView:
    """A job and what it came to: the sync run it started, or the delivery replay it runs (null while it waits)."""

    job_id: str
    run: RunView | None
    replay: DeliveryReplayView | None
