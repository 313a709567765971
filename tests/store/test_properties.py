"""Any sequence of writes leaves exactly one row per code, holding what the last accepted write made of it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miniapp_sync.store import RecordWrite, Store, normalise_version
from miniapp_sync.testing import FakeClock

PRODUCT = "core:product"


@dataclass
class Known:
    """The reference model's view of one record."""

    data: dict[str, Any]
    version: str | None
    webhook_at: float | None
    partial: bool


@dataclass(frozen=True)
class Op:
    code: str
    value: int
    extra: bool
    version: str | None
    fetched_ago: float | None
    merge: bool

    def write(self, now: float) -> RecordWrite:
        data = {"v": self.value, "x": self.value} if self.extra else {"v": self.value}
        fetched_at = None if self.fetched_ago is None else now - self.fetched_ago
        return RecordWrite(self.code, data, version=self.version, fetched_at=fetched_at, merge=self.merge)


ops = st.builds(
    Op,
    code=st.sampled_from(["a", "b", "c"]),
    value=st.integers(0, 2),
    extra=st.booleans(),
    # The first two are the same instant; the last is a bare date.
    version=st.none()
    | st.sampled_from(["2024-01-01T00:00:00Z", "2024-01-01T03:00:00+03:00", "2024-01-02T00:00:00Z", "2024-01-03"]),
    fetched_ago=st.none() | st.sampled_from([0.0, 0.5, 2.0]),
    merge=st.booleans(),
)
batches = st.lists(st.tuples(st.sampled_from(["bulk", "webhook"]), st.lists(ops, min_size=1, max_size=4)), max_size=6)


def _apply(model: dict[str, Known], op: Op, source: str, now: float) -> None:
    """Apply one write to the model, following D21 and D22 as written in DESIGN.md."""
    write = op.write(now)
    version = None if write.version is None else normalise_version(write.version)
    known = model.get(op.code)
    stale = newer = False
    if known is not None:
        if version is not None and known.version is not None:
            stale, newer = known.version > version, version > known.version
        elif source == "bulk" and write.fetched_at is not None:
            stale = (known.webhook_at or 0) > write.fetched_at
            newer = known.webhook_at is not None and write.fetched_at > known.webhook_at
    completes = known is not None and known.partial and not write.merge
    if stale and not completes:
        return
    if completes and not newer:
        assert known is not None
        # A full record not known to be newer completes a partial one: the updates' fields and version win.
        data, partial, version = {**write.data, **known.data}, False, known.version or version
    elif write.merge:
        data = write.data if known is None else {**known.data, **write.data}
        partial = True if known is None else known.partial
    else:
        data, partial = write.data, False
    if known is not None and (known.data, known.partial) == (data, partial):
        if source == "webhook":
            known.webhook_at = now
        return
    model[op.code] = Known(
        data,
        version if version is not None else (known.version if known else None),
        now if source == "webhook" else (known.webhook_at if known else None),
        partial,
    )


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=batches)
def test_one_row_per_code_with_the_last_accepted_write(store: Store, clock: FakeClock, batches: list[Any]) -> None:
    # Examples share the fixture's store; a fresh installation keeps them apart.
    installation_id = store.save_installation(uuid.uuid4().hex, "ns", credentials=b"", metadata={}, user_input={}).id
    model: dict[str, Known] = {}
    for source, batch in batches:
        now = clock.now()
        result = store.write_records(installation_id, PRODUCT, [op.write(now) for op in batch], source=source)
        assert result.created + result.updated + result.unchanged + result.stale == len(batch)
        for op in batch:
            _apply(model, op, source, now)
        clock.advance(1)
    stored = store.list_records(installation_id, include_deleted=True, limit=10)
    assert [r.code for r in stored] == sorted(model)
    assert {r.code: (r.data, r.partial, r.version, r.webhook_at) for r in stored} == {
        code: (k.data, k.partial, k.version, k.webhook_at) for code, k in model.items()
    }
