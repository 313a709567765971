"""The store: installations, records, runs, checkpoints, dead letters and OAuth states (SQLite or PostgreSQL)."""

from miniapp_sync.store.model import (
    DeadLetter,
    DeadLetterKind,
    Installation,
    InstallationStatus,
    RecordSource,
    RecordWrite,
    Run,
    RunStatus,
    StoredRecord,
    WriteResult,
)
from miniapp_sync.store.records import content_hash, normalise_version
from miniapp_sync.store.store import Store

__all__ = [
    "DeadLetter",
    "DeadLetterKind",
    "Installation",
    "InstallationStatus",
    "RecordSource",
    "RecordWrite",
    "Run",
    "RunStatus",
    "Store",
    "StoredRecord",
    "WriteResult",
    "content_hash",
    "normalise_version",
]
