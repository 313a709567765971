"""Apply prepared inbox rows to records (D22, D27, D28), a batch at a time, in arrival order.

Handler operations: ``create`` and ``upsert`` write the whole record, ``update`` merges into it.
An ``update`` for a record never seen is stored flagged partial; when the full record arrives
later (its ``create``, resent, or a bulk page), the fields the updates brought are kept over it
unless the full record is the newer version (D21), and the record stops being partial.

A batch is applied set-wise (a query per content type, not per row): rows are cut into chunks
in which no record repeats, so each write's outcome is known, and a row fires its trigger only
when its write changed something (D20) or it has no handler.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from miniapp_sync.mapping.plan import HandlerPlan
from miniapp_sync.mapping.records import MappedRecord
from miniapp_sync.store import InboxRow, RecordWrite, StoredRecord, normalise_version
from miniapp_sync.store.processing import Processing
from miniapp_sync.webhooks.customers import LINKED, link
from miniapp_sync.webhooks.triggers import View, payload, record_view


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


def version_of(data: dict[str, Any]) -> str | None:
    """Return a mapped record's version: its ``updatedAt`` when that is text."""
    version = data.get("updatedAt")
    return version if isinstance(version, str) else None


def completing(
    stored: StoredRecord | None, code: str, data: dict[str, Any], *, origin: str | None = None
) -> RecordWrite:
    """Return the write of a full record over what is stored, completing a partial one (D22).

    ``origin`` is the delivery the write comes from, the source of its history row (D39).
    """
    version = version_of(data)
    if stored is None or not stored.partial or stored.deleted:
        return RecordWrite(code, data, version=version, origin=origin)
    if version is not None and stored.version is not None and normalise_version(version) > stored.version:
        return RecordWrite(code, data, version=version, origin=origin)  # a newer full record supersedes the updates
    # The updates arrived first but happened later: their fields win, and their version stays.
    return RecordWrite(code, {**data, **stored.data}, version=stored.version or version, origin=origin)


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
        datas = []
        for index in indexes:
            data = dict(chunk[index].mapped.data)  # type: ignore[union-attr]  # by_type holds mapped rows only
            customer = customers[index]
            if customer is not None and content_type in LINKED:
                data["customerCode"] = customer["code"]
            datas.append(data)
        writes = _writes(tx, installation_id, content_type, [chunk[i] for i in indexes], datas)
        written = set(tx.write(installation_id, content_type, writes).written)
        merged = [w.code for i, w in zip(indexes, writes, strict=True) if w.merge and chunk[i].trigger]
        read_back = tx.records(installation_id, content_type, [c for c in merged if c in written]) if merged else {}
        for index, write in zip(indexes, writes, strict=True):
            if write.code not in written:
                outcomes[index] = (False, None)  # unchanged or stale: nothing happened, nothing fires (D20)
            elif write.merge:  # the merged record is only known once written
                outcomes[index] = (True, record_view(read_back.get(write.code)))
            else:
                view = {"contentType": content_type, "code": write.code, "partial": write.partial, "data": write.data}
                outcomes[index] = (True, view)
    fired = [
        (item.row, payload(outcomes[index][1], customers[index]))
        for index, item in enumerate(chunk)
        if item.trigger and outcomes[index][0]
    ]
    tx.emit(tenant, fired)
    for item in chunk:
        tx.done(item.row)


def _writes(
    tx: Processing, installation_id: str, content_type: str, items: list[Prepared], datas: list[dict[str, Any]]
) -> list[RecordWrite]:
    """Return each row's write: a merge for ``update``, else the whole record, completing a partial one."""
    codes = [str(data["code"]) for data in datas]
    merges = [item.handler is not None and item.handler.operation == "update" for item in items]
    full = [code for code, merge in zip(codes, merges, strict=True) if not merge]
    # Only a partial record's data matters, and reading data costs: the flags first, then those.
    states = tx.states(installation_id, content_type, full) if full else {}
    partial = [code for code, state in states.items() if state.partial and not state.deleted]
    stored = tx.records(installation_id, content_type, partial) if partial else {}
    writes = []
    for item, merge, code, data in zip(items, merges, codes, datas, strict=True):
        origin = str(item.row.id)
        if merge:
            writes.append(RecordWrite(code, data, version=version_of(data), merge=True, origin=origin))
        else:
            writes.append(completing(stored.get(code), code, data, origin=origin))
    return writes
