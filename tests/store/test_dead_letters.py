"""Dead letters are written one way (``insert_dead_letter``), in the caller's transaction or one of their own.

A record a bulk run could not write, a delivery stored as failed at the door and a delivery
failed by the processor all become the same kind of row, with the same checks; written inside a
processing transaction, a letter commits or rolls back with the rows' new states.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from miniapp_sync.errors import StoreError
from miniapp_sync.store import Inbox, InboxEntry, Store
from miniapp_sync.store.dead_letters import insert_dead_letter
from miniapp_sync.testing import FakeClock


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store.open(str(tmp_path / "store.sqlite"), clock=FakeClock())
    yield opened  # type: ignore[misc]
    opened.close()


def test_records_and_deliveries_failed_at_the_door_or_in_processing_become_the_same_rows(store: Store) -> None:
    installation = store.save_installation("acme", "salla", credentials=b"", metadata={}, user_input={}).id
    record = store.add_dead_letter(
        installation, kind="record", source="products", payload={"id": 1}, reason="price: expected a number"
    )
    inbox = Inbox(store)
    inbox.add([InboxEntry("salla", installation, "order.created", "t-1", "failed", b'{"id":7}', "too old to map")])
    inbox.add([InboxEntry("salla", installation, "order.updated", "t-2", "pending", b'{"id":8}')])
    (row,) = inbox.claim_due(installation, 10)[0]
    with inbox.transaction() as processing:
        processed = processing.fail(row, "the mapping rejected the record")
    letters = store.list_dead_letters(installation)
    assert [(d.kind, d.source, d.reason) for d in letters] == [
        ("record", "products", "price: expected a number"),
        ("webhook", "order.created", "too old to map"),
        ("webhook", "order.updated", "the mapping rejected the record"),
    ]
    assert [letters[0].id, letters[2].id] == [record, processed]
    assert letters[1].payload["body"] == {"id": 7}
    assert letters[2].payload["inboxId"] == row.id


def test_a_letter_written_in_a_transaction_that_fails_is_not_kept(store: Store) -> None:
    installation = store.save_installation("acme", "salla", credentials=b"", metadata={}, user_input={}).id

    def twice() -> None:
        """Dead-letter twice in one transaction, the second time of a kind that does not exist."""
        with store.database.write("add two dead letters") as conn:
            for kind in ("record", "parcel"):
                insert_dead_letter(
                    conn,
                    installation,
                    kind=kind,
                    source="products",
                    payload={},
                    reason="r",
                    run_id=None,
                    now=0.0,  # type: ignore[arg-type]
                )

    with pytest.raises(StoreError, match="unknown dead letter kind 'parcel'"):
        twice()
    assert store.list_dead_letters(installation) == []
