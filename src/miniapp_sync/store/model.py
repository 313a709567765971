"""What the store hands out and takes in: immutable rows, record writes and their outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple, get_args

from miniapp_sync.errors import StoreError

InstallationStatus = Literal["pending", "connected", "error", "uninstalled"]
RecordSource = Literal["bulk", "webhook"]
RunStatus = Literal["running", "succeeded", "failed", "partial", "interrupted", "abandoned"]
DeadLetterKind = Literal["record", "webhook"]

INSTALLATION_STATUSES: Final = frozenset(get_args(InstallationStatus))
RECORD_SOURCES: Final = frozenset(get_args(RecordSource))
RUN_STATUSES: Final = frozenset(get_args(RunStatus))
DEAD_LETTER_KINDS: Final = frozenset(get_args(DeadLetterKind))


def check_allowed(value: str, allowed: frozenset[str], what: str) -> None:
    """Raise StoreError when ``value`` is not one of ``allowed`` (``what`` names it in the message)."""
    if value not in allowed:
        raise StoreError(f"unknown {what} {value!r}; expected one of {', '.join(sorted(allowed))}")


@dataclass(frozen=True, slots=True)
class Installation:
    """A MiniApp installed for one tenant: its (already encrypted) credentials, metadata and user input."""

    id: str
    tenant: str
    ns: str
    status: InstallationStatus
    credentials: bytes = field(repr=False)  # ciphertext, but it still has no business in logs
    metadata: dict[str, Any]
    user_input: dict[str, Any]
    error: str | None
    created_at: float
    updated_at: float
    paused_at: float | None = None  # when its schedules were paused (None: they run)

    @property
    def paused(self) -> bool:
        """Return whether the scheduler skips this installation."""
        return self.paused_at is not None


class RecordWrite(NamedTuple):
    """One record to upsert: the mapped data, its version, when it was fetched, and how to apply it.

    ``version`` is the record's ``updatedAt`` (ISO 8601); ``fetched_at`` is when a bulk page was
    fetched (D21); ``merge`` applies update semantics: shallow-merge over the stored data (D22).
    A NamedTuple, not a frozen dataclass: a bulk run builds one per record, and a frozen
    dataclass's ``__init__`` sets each of its seven fields through ``object.__setattr__``
    (~0.8 µs a record; ``tuple.__new__`` in ``sync.batches.record_write``: ~0.2 µs).
    """

    code: str
    data: dict[str, Any]
    version: str | None = None
    fetched_at: float | None = None
    partial: bool = False
    merge: bool = False
    origin: str | None = None  # the inbox delivery that brought a webhook write: its history's source (D39)


def version_of(data: dict[str, Any]) -> str | None:
    """Return a mapped record's version (D21): its ``updatedAt`` when that is text."""
    version = data.get("updatedAt")
    return version if isinstance(version, str) else None


class Written(NamedTuple):
    """A record as a write left it: its data and whether it is still partial (D22)."""

    data: dict[str, Any]
    partial: bool


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a batch of writes did; ``written`` lists each created or updated code once, in input order.

    ``records`` holds, by code, what each of those was written as (a merge or a completed partial
    record included), so a caller needs no read back.
    """

    created: int
    updated: int
    unchanged: int
    stale: int
    written: list[str]
    records: dict[str, Written] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record as stored, keyed by (installation, content type, code) (D20)."""

    installation_id: str
    content_type: str
    code: str
    data: dict[str, Any]
    content_hash: str
    version: str | None
    source: RecordSource
    partial: bool
    deleted: bool
    created_at: float
    updated_at: float
    seen_at: float
    webhook_at: float | None
    run_id: str | None  # the last run that wrote or saw it


@dataclass(frozen=True, slots=True)
class Run:
    """A sync run of one resource (or of all resources when ``resource`` is None)."""

    id: str
    installation_id: str
    resource: str | None
    status: RunStatus
    started_at: float
    finished_at: float | None
    stats: dict[str, Any]
    error: str | None
    owner: str | None = None  # the process running it (sync.runs.RunOwner)
    heartbeat_at: float | None = None  # its last sign of progress
    job_id: str | None = None  # the job that ran it, when a queue did
    progress: dict[str, Any] | None = None  # figures so far, written while it runs (sync.runs.Heartbeat)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record or webhook delivery that could not be processed, kept for inspection and replay."""

    id: int
    installation_id: str
    kind: DeadLetterKind
    source: str
    payload: Any
    reason: str
    run_id: str | None
    created_at: float
    replayed_at: float | None


@dataclass(frozen=True, slots=True)
class OAuthState:
    """A taken OAuth state: the flow its start link allowed (D31a)."""

    tenant: str
    ns: str
    redirect_uri: str | None
    reconnect: bool
    user_input: dict[str, Any]
