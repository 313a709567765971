"""What travels through a job queue: jobs (ids and names only), enqueue receipts, outcomes, retry policy."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

JobKind = Literal["sync", "drain", "deliver", "replay"]
OutcomeStatus = Literal["done", "failed", "dropped"]


@dataclass(frozen=True, slots=True)
class Job:
    """One unit of work, named by ids only, so any worker that serves the MiniApp can run it.

    ``sync``: one resource of one installation. ``drain``: an installation's webhook inbox (D33).
    ``deliver``: the trigger events due to subscribers. ``replay``: a recorded bulk replay of
    webhook deliveries of ``ns`` (``replay``: its id). ``attempt`` counts earlier failed tries.
    A ``full`` sync ignores the resource's checkpoint (its key is the same: one sync of a pair at a time).
    """

    kind: JobKind
    ns: str = ""
    installation_id: str = ""
    resource: str = ""
    attempt: int = 0
    replay: str = ""
    full: bool = False

    @property
    def key(self) -> str:
        """The job's lock: at most one such job queued and one running, anywhere."""
        if self.kind == "sync":
            return f"sync:{self.installation_id}:{self.resource}"
        if self.kind == "drain":
            return f"drain:{self.installation_id}"
        if self.kind == "replay":
            return f"replay:{self.replay}"
        return "deliver"

    def args(self) -> dict[str, Any]:
        """Return the job's arguments as a queue stores them (JSON: ids, names and the attempt)."""
        args: dict[str, Any] = {
            "ns": self.ns,
            "installation_id": self.installation_id,
            "resource": self.resource,
            "attempt": self.attempt,
        }
        if self.replay:
            args["replay"] = self.replay
        if self.full:  # only when set: a worker of an earlier version takes no such argument
            args["full"] = True
        return args

    def again(self, *, failed: bool) -> Job:
        """Return the same job for its next run: one attempt further after a failure, else from scratch."""
        return dataclasses.replace(self, attempt=self.attempt + 1 if failed else 0)

    def __str__(self) -> str:
        where = " ".join(part for part in (self.ns, self.installation_id, self.resource, self.replay) if part)
        shown = f"{self.kind}{' (full)' if self.full else ''} {where}".rstrip()
        return shown + (f" (attempt {self.attempt + 1})" if self.attempt else "")


@dataclass(frozen=True, slots=True)
class Enqueued:
    """The receipt of one enqueue: the job's id, or None when the same key was already queued.

    Ids are strings whatever the queue (D37): the in-process queue's are random, so that a run's
    ``job_id`` never names a job of an earlier process; Procrastinate's are its row ids.
    """

    job: Job
    id: str | None

    @property
    def duplicate(self) -> bool:
        """Return True when the job was refused because an identical one waits already (it covers this one)."""
        return self.id is None

    def as_dict(self) -> dict[str, Any]:
        """Return the receipt as JSON-ready data: the job id leads to its run (``GET /api/jobs/{id}``)."""
        return {
            "jobId": self.id,
            "kind": self.job.kind,
            "key": self.job.key,
            "resource": self.job.resource or None,
            "duplicate": self.duplicate,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a job ended: ``done``, ``failed`` (retried with backoff) or ``dropped`` (retrying cannot help).

    A ``done`` job may ask to run again in ``again_in`` seconds (more work comes due then) and for
    ``follow`` jobs to be queued after it.
    """

    status: OutcomeStatus
    detail: str = ""
    again_in: float | None = None
    follow: tuple[Job, ...] = ()
    run_id: str | None = None  # the sync run the job made, if any

    def __str__(self) -> str:
        return f"{self.status}: {self.detail}" if self.detail else self.status


@dataclass(frozen=True, slots=True)
class JobRetry:
    """How failed jobs are tried again: ``attempts`` in all, waiting ``base·2ⁿ`` seconds (at most ``cap``)."""

    attempts: int = 5
    base: float = 5.0
    cap: float = 600.0

    def delay(self, attempt: int) -> float | None:
        """Return the wait before retrying a job that failed on ``attempt`` (0-based), or None to give up."""
        if attempt + 1 >= self.attempts:
            return None
        return float(min(self.cap, self.base * 2**attempt))
