"""Apply prepared inbox rows to records (D22, D27, D28), a batch at a time, in arrival order.

Handler operations: ``create`` and ``upsert`` write the whole record, ``update`` merges into it.
An ``update`` for a record never seen is stored flagged partial; when the full record arrives
later (its ``create``, resent, or a bulk page), the fields the updates brought are kept over it
unless the full record is the newer version (D21), and the record stops being partial. The store
owns that rule (``store/records.py``) and returns what it wrote, so nothing is read back here.

A batch is applied set-wise (a query per content type, not per row): rows are cut into chunks
in which no record repeats, so each write's outcome is known, and a row fires its trigger only
when its write changed something (D20) or it has no handler.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from miniapp_sync.mapping.plan import HandlerPlan
from miniapp_sync.mapping.records import MappedRecord
from miniapp_sync.store import InboxRow, RecordWrite, version_of
from miniapp_sync.store.processing import Processing
from miniapp_sync.webhooks.customers import LINKED, link
from miniapp_sync.webhooks.triggers import View, payload


@dataclass(frozen=True, slots=True)
class Prepared:
    """A claimed row with its mapping done (pure work, outside the transaction)."""

    row: InboxRow
    handler: HandlerPlan | None = None
    mapped: MappedRecord | None = None
    customer: MappedRecord | None = None
    trigger: bool = False
    problem: str | None = None  # why it can never succeed: it is dead-lettered as is

    def key(self) -> tuple[str, str] | None:
        """Return the (content type, code) this row writes, if it writes one."""
        if self.handler is None or self.mapped is None:
            return None
        return self.handler.content_type, str(self.mapped.data["code"])


def apply_rows(tx: Processing, tenant: str, rows: Sequence[Prepared]) -> None:
    """Apply prepared rows of one installation in the caller's transaction, in arrival order."""
    for item in rows:
        if item.problem is not None:
            tx.fail(item.row, item.problem)
    for chunk in _chunks([item for item in rows if item.problem is None]):
        _apply(tx, tenant, chunk)


def _chunks(rows: list[Prepared]) -> Iterator[list[Prepared]]:
    """Cut rows where a record repeats, so a chunk writes each record once."""
    chunk: list[Prepared] = []
    seen: set[tuple[str, str]] = set()
    for item in rows:
        key = item.key()
        if key is not None and key in seen:
            yield chunk
            chunk, seen = [], set()
        chunk.append(item)
        if key is not None:
            seen.add(key)
    if chunk:
        yield chunk


def _apply(tx: Processing, tenant: str, chunk: list[Prepared]) -> None:
    installation_id = chunk[0].row.installation_id or ""
    customers = link(tx, installation_id, [item.customer for item in chunk])
    outcomes: list[tuple[bool, View | None]] = [(True, None)] * len(chunk)  # (wrote, record): no handler fires
    by_type: dict[str, list[int]] = {}
    for index, item in enumerate(chunk):
        if item.handler is not None and item.mapped is not None:
            by_type.setdefault(item.handler.content_type, []).append(index)
    for content_type, indexes in by_type.items():
        # The store decides merges and partial-record completion (D22) and returns what it wrote.
        writes = [_write(chunk[index], customers[index], content_type) for index in indexes]
        wrote = tx.write(installation_id, content_type, writes).records
        for index, write in zip(indexes, writes, strict=True):
            record = wrote.get(write.code)
            if record is None:
                outcomes[index] = (False, None)  # unchanged or stale: nothing happened, nothing fires (D20)
            else:
                view = {"contentType": content_type, "code": write.code, "partial": record.partial, "data": record.data}
                outcomes[index] = (True, view)
    fired = [
        (item.row, payload(outcomes[index][1], customers[index]))
        for index, item in enumerate(chunk)
        if item.trigger and outcomes[index][0]
    ]
    tx.emit(tenant, fired)
    for item in chunk:
        tx.done(item.row)


def _write(item: Prepared, customer: View | None, content_type: str) -> RecordWrite:
    """Return a mapped row's write: the whole record, or a merge for ``update`` (D22)."""
    assert item.handler is not None  # _apply groups mapped rows only
    assert item.mapped is not None
    data = dict(item.mapped.data)
    if customer is not None and content_type in LINKED:
        data["customerCode"] = customer["code"]
    merge = item.handler.operation == "update"
    return RecordWrite(str(data["code"]), data, version=version_of(data), merge=merge, origin=str(item.row.id))
