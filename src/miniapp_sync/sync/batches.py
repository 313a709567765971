"""A resource's mapped records on their way to the store: batches written in order, each checkpoint with its last."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Any

from miniapp_sync.mapping.plan import ResourcePlan
from miniapp_sync.mapping.records import MappedRecord
from miniapp_sync.store import RecordWrite, Store, WriteResult
from miniapp_sync.sync.reports import ResourceReport

_new_write = tuple.__new__
Marked = tuple[list[RecordWrite], tuple[str, dict[str, Any]] | None]  # a batch and the checkpoint saved with it


class BatchWriter:
    """Writes a resource's batches one at a time and in order: decided in the loop on SQLite, in a thread elsewhere.

    A SQLite batch is CPU and one fsync, a few milliseconds. Handed to a thread it cost more than
    it saved: the writer's Python work contends with the loop's for the GIL, and each record's
    objects, built on one core, are read again on the other (measured ~15% fewer records/s, and
    ~4 µs more CPU a record). So it is decided inline (lookup, hashes, rows: Python), and only
    what SQLite does without the GIL, its statements and its commit with the fsync (~5 ms a
    batch on this project's machine: ~0.5 s of every 20,000 records), runs on the store's
    committer thread while the loop fetches and maps the next pages (``Store.stage_records``).
    A PostgreSQL batch waits on the network: it runs whole in a thread, and the loop fetches
    and maps the next pages meanwhile.
    """

    def __init__(
        self,
        store: Store,
        installation_id: str,
        plan: ResourcePlan,
        run_id: str,
        report: ResourceReport,
        *,
        inline: bool,
    ):
        self.store = store
        self.installation_id = installation_id
        self.plan = plan
        self.run_id = run_id
        self.report = report
        self._inline = inline  # the backend's call (backend.py): SQLite inline, PostgreSQL in a thread
        self._pending: asyncio.Future[list[WriteResult]] | None = None

    async def write(
        self, buffer: list[RecordWrite], batch_size: int, checkpoint: dict[str, Any], *, last: bool = False
    ) -> None:
        """Write ``buffer`` in transactions of batchSize, the checkpoint with the last one.

        The previous write is waited for first, and this one is not: on SQLite it is decided now
        and written and committed meanwhile, elsewhere the whole write runs in a thread, while
        the caller fetches and maps the next pages. On SQLite only the resource's ``last`` write
        commits with an fsync: each batch carries its checkpoint, so one a power cut takes back
        is fetched again (``Store.stage_records``); an fsync per batch, ~5 ms of the committer's
        time, made it the slower side of the pipeline (20,000 products written in process
        (/tmp script, store alone, 100 batches): ~1.5 s -> ~1.0 s of wall time).
        """
        chunks = [buffer[i : i + batch_size] for i in range(0, len(buffer), batch_size)] or [[]]
        # Each chunk with the checkpoint to save beside it: only the last one carries it.
        marked: list[Marked] = [(chunk, None) for chunk in chunks[:-1]]
        marked.append((chunks[-1], (self.plan.key, checkpoint)))
        if not self._inline:
            await self.wait()
            self._pending = asyncio.ensure_future(asyncio.to_thread(self._write, marked))
            return
        for chunk, mark in marked:
            await self.wait()
            result, commit = self.store.stage_records(
                self.installation_id,
                self.plan.content_type,
                chunk,
                source="bulk",
                run_id=self.run_id,
                checkpoint=mark,
                durable=last and mark is not None,
            )
            self._pending = asyncio.ensure_future(_committed(commit, result))

    async def wait(self) -> None:
        """Wait for the write in flight, if any, and count what it did (raising what it raised).

        Shielded: a run cancelled meanwhile leaves the write in flight (a thread's write, or a
        commit handed to the committer thread, runs to its end anyway), and the next wait, the
        engine's on the way out, still counts it.
        """
        pending = self._pending
        if pending is None:
            return
        try:
            results = await asyncio.shield(pending)
        except asyncio.CancelledError:
            raise
        except BaseException:
            self._pending = None
            raise
        self._pending = None
        self._count(results)

    def _count(self, results: list[WriteResult]) -> None:
        for result in results:
            self.report.created += result.created
            self.report.updated += result.updated
            self.report.unchanged += result.unchanged
            self.report.stale += result.stale

    def _write(self, marked: list[Marked]) -> list[WriteResult]:
        return [
            self.store.write_records(
                self.installation_id, self.plan.content_type, chunk, source="bulk", run_id=self.run_id, checkpoint=mark
            )
            for chunk, mark in marked
        ]


async def _committed(commit: Future[None], result: WriteResult) -> list[WriteResult]:
    # Shielded: cancelling this must never cancel a commit not yet started (its writer lock would stay held).
    await asyncio.shield(asyncio.wrap_future(commit))
    return [result]


def record_write(mapped: MappedRecord, fetched_at: float) -> RecordWrite:
    """Return the store write of a mapped record: its code, data and version, and when its page was fetched."""
    data = mapped.data
    version = data.get("updatedAt")  # version_of() in line, without its call per record
    if version.__class__ is not str and not isinstance(version, str):  # none (list products), or not text
        version = None
    # tuple.__new__ skips the NamedTuple's own __new__, a Python function call per record.
    return _new_write(RecordWrite, (str(data["code"]), data, version, fetched_at, False, False, None))
