"""Runs as views (D37, issue #15): who, what, per-resource figures, the error as data, progress, checkpoints.

A run is shown with its tenant and MiniApp, its duration, one set of figures per resource
(fetched, created, updated, unchanged, rejected, requests, retries, 429s, pages), each failed
resource's error (the list page, the redacted URL, the status, the message: all already
redacted by the engine, D30), its live progress, and the checkpoint the next run of each resource
resumes from. ``moment`` reads the ``since``/``until`` of a run search, for the CLI and the API alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from miniapp_sync.store import Run, RunStatus
from miniapp_sync.views.models import maybe_timestamp, timestamp
from miniapp_sync.views.pages import ParameterError
from miniapp_sync.views.schema import Timestamp

_RELATIVE: Final = re.compile(r"^(\d{1,6})\s*(m|min|h|d|w)$", re.IGNORECASE)
_UNITS: Final = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# What the API documents for ``since``/``until`` (each value it matches parses): a relative
# time, a keyword, or an ISO 8601 date or time whose day exists (29 February aside) in 1900-2099.
_DAY: Final = "((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))"
_TIME: Final = "(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\\.[0-9]{1,6})?)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?)?"
MOMENT_PATTERN: Final = f"^([0-9]{{1,6}}(m|h|d|w)|today|yesterday|now|(19|20)[0-9]{{2}}-{_DAY}{_TIME})$"
MOMENT_HINT: Final = "an ISO 8601 date or time (2026-12-03, 2026-12-03T08:00:00Z), 24h, 7d, 30m, today or yesterday"


def moment(text: str, now: float, *, field: str) -> float:
    """Return the epoch seconds ``text`` names: ISO 8601 (UTC unless it says), ``24h``/``7d`` ago, ``today``.

    The one reader of a filter's time, for runs and deliveries, in the CLI, the API and the console.
    """
    value = text.strip()
    lowered = value.lower()
    if lowered in ("today", "yesterday"):
        midnight = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        return midnight - (86400 if lowered == "yesterday" else 0)
    if lowered == "now":
        return now
    relative = _RELATIVE.match(value)
    if relative:
        return now - int(relative[1]) * _UNITS[relative[2].lower()]
    iso = value.upper()  # RFC 3339 allows a lower-case t and z
    if iso[17:19] == "60":  # a leap second: the one before it, as Python's datetime has none
        iso = iso[:17] + "59" + iso[19:]
    try:
        parsed = datetime.fromisoformat(iso)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError):
        raise ParameterError(field, f"expected {MOMENT_HINT}, found {value[:40]!r}") from None


@dataclass(frozen=True, slots=True)
class ResourceFiguresView:
    """What a run did for one resource, and the checkpoint that resource's next run resumes from."""

    resource: str
    fetched: int
    created: int
    updated: int
    unchanged: int
    stale: int
    rejected: int
    deleted: int
    pages: int
    requests: int
    retries: int
    throttled: int  # 429 answers
    seconds: float
    resumed_from: dict[str, Any] | None  # the checkpoint this run started from
    resumes_from: dict[str, Any] | None  # the checkpoint the next run starts from (null: the first page)

    @classmethod
    def of(cls, resource: str, figures: dict[str, Any], checkpoint: dict[str, Any] | None) -> ResourceFiguresView:
        """Return the figures of one resource's stats (missing counts are 0: runs of older versions)."""

        def count(name: str) -> int:
            return int(figures.get(name) or 0)

        return cls(
            resource, count("fetched"), count("created"), count("updated"), count("unchanged"), count("stale"),
            count("rejected"), count("deleted"), count("pages"), count("requests"), count("retries"),
            count("throttled"), round(float(figures.get("seconds") or 0.0), 3), figures.get("resumed_from"),
            resumes_from(checkpoint),
        )  # fmt: skip


def resumes_from(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """Return where the next run of a resource starts, from its checkpoint: a page, or only what changed since."""
    if not state:
        return None
    if state.get("done"):
        return {"since": state["since"]} if state.get("since") else None  # done: over again (incremental: since)
    return {k: v for k, v in state.items() if k != "began"}


@dataclass(frozen=True, slots=True)
class RunFailureView:
    """Why a resource failed: the list page and redacted URL when a provider call failed there, the message."""

    resource: str
    page: int | None
    url: str | None
    status: int | None  # the provider's HTTP status, when it answered
    message: str

    @classmethod
    def of(cls, resource: str, figures: dict[str, Any]) -> RunFailureView | None:
        """Return a resource's failure, or None when it did not fail."""
        failure = figures.get("failure")
        if isinstance(failure, dict):
            return cls(resource, failure.get("page"), failure.get("url"), failure.get("status"), failure["message"])
        error = figures.get("error")
        return None if not error else cls(resource, None, None, None, str(error))  # a run of an older version


@dataclass(frozen=True, slots=True)
class ProgressView:
    """A run's figures so far, written at most once a second while it runs (the last ones once it ended).

    Always present: a run that wrote none yet (or ran before progress was recorded) shows zeros
    and a null ``updatedAt``, so a client never has to tell a missing object from an empty one.
    """

    resource: str | None  # the resource at work (null once the run ended)
    records: int
    pages: int
    rate: float | None  # records a second since the previous write (null: no interval yet)
    throttled: int  # 429 answers
    updated_at: Timestamp | None

    @classmethod
    def of(cls, progress: dict[str, Any] | None) -> ProgressView:
        """Return the view of a run's progress column."""
        if not progress:
            return cls(None, 0, 0, None, 0, None)
        return cls(
            progress.get("resource"), int(progress.get("records", 0)), int(progress.get("pages", 0)),
            progress.get("rate"), int(progress.get("throttled", 0)), timestamp(float(progress["at"])),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class RunView:
    """A bulk sync run of one resource (or of all: ``resource`` null): who, how it went, and why it failed."""

    id: str
    installation_id: str
    tenant: str | None
    ns: str | None
    resource: str | None
    status: RunStatus
    started_at: Timestamp
    finished_at: Timestamp | None
    duration_seconds: float | None  # so far, while it runs
    resources: list[ResourceFiguresView]
    errors: list[RunFailureView]
    progress: ProgressView
    error: str | None  # every failure in one line (and why a run was interrupted or abandoned)
    job_id: str | None  # the job that ran it (D36), when a queue did

    @classmethod
    def of(
        cls,
        r: Run,
        *,
        tenant: str | None = None,
        ns: str | None = None,
        checkpoints: dict[tuple[str, str], dict[str, Any]] | None = None,
        now: float | None = None,
    ) -> RunView:
        """Return a run's view; ``checkpoints`` by (installation, resource), ``now`` for a running one's duration."""
        end = r.finished_at if r.finished_at is not None else now if r.status == "running" else None
        duration = None if end is None else round(max(0.0, end - r.started_at), 3)
        saved = checkpoints or {}
        figures = [
            ResourceFiguresView.of(key, stats, saved.get((r.installation_id, key)))
            for key, stats in r.stats.items()
            if isinstance(stats, dict)
        ]
        errors = [
            f for key, stats in r.stats.items() if isinstance(stats, dict) and (f := RunFailureView.of(key, stats))
        ]
        return cls(
            r.id, r.installation_id, tenant, ns, r.resource, r.status, timestamp(r.started_at),
            maybe_timestamp(r.finished_at), duration, figures, errors, ProgressView.of(r.progress), r.error, r.job_id,
        )  # fmt: skip
