"""Group commit: concurrent deliveries share transactions, duplicates are found, failures reach every waiter."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from miniapp_sync.errors import StoreError
from miniapp_sync.store import Inbox, InboxEntry, Store
from miniapp_sync.testing import FakeClock
from miniapp_sync.webhooks.commit import GroupCommit
from miniapp_sync.webhooks.concurrency import OwnThread
from miniapp_sync.webhooks.metrics import WebhookMetrics


class CountingInbox(Inbox):
    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.batches: list[int] = []

    def add(self, entries: list[InboxEntry]) -> list[bool]:  # type: ignore[override]
        self.batches.append(len(entries))
        return super().add(entries)


class HeldInbox(Inbox):
    """Its first commit holds on (as behind the processor's writer lock) until the test lets it go."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.batches: list[int] = []
        self.threads: list[int] = []
        self.entered, self.release = threading.Event(), threading.Event()

    def add(self, entries: list[InboxEntry]) -> list[bool]:  # type: ignore[override]
        self.batches.append(len(entries))
        self.threads.append(threading.get_ident())
        if len(self.batches) == 1:
            self.entered.set()
            assert self.release.wait(10), "the test never let the first commit go: was the loop held?"
        return super().add(entries)


class BrokenInbox(Inbox):
    def add(self, entries: object) -> list[bool]:  # type: ignore[override]
        raise StoreError("cannot store webhook deliveries: disk I/O error")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store.open(tmp_path / "store.sqlite", clock=FakeClock()) as opened:
        yield opened  # type: ignore[misc]


def entry(installation: str, key: str | None) -> InboxEntry:
    return InboxEntry("salla", installation, "order.created", key, "pending", b"{}")


async def test_concurrent_deliveries_share_few_transactions(store: Store) -> None:
    installation = store.save_installation("t", "salla", credentials=b"", metadata={}, user_input={}).id
    inbox = CountingInbox(store)
    metrics = WebhookMetrics()
    commit = GroupCommit(inbox, FakeClock(), max_batch=64, max_delay=0.002, metrics=metrics)
    results = await asyncio.gather(*(commit.add(entry(installation, f"k{i}")) for i in range(200)))
    await commit.close()
    assert results == ["new"] * 200
    assert sum(inbox.batches) == 200
    assert len(inbox.batches) <= 5  # 200 waiters, batches of at most 64
    assert max(inbox.batches) == 64
    assert len(inbox.list(limit=1000)) == 200


async def test_duplicates_are_reported_within_a_batch_and_across_batches(store: Store) -> None:
    installation = store.save_installation("t", "salla", credentials=b"", metadata={}, user_input={}).id
    commit = GroupCommit(Inbox(store), FakeClock(), max_delay=0)
    first = await asyncio.gather(*(commit.add(entry(installation, k)) for k in ("a", "b", "a", None, None)))
    second = await commit.add(entry(installation, "b"))
    await commit.close()
    assert first == ["new", "new", "duplicate", "new", "new"]  # no key: never a duplicate
    assert second == "duplicate"


async def test_a_failed_commit_fails_every_waiter_and_stores_nothing(store: Store) -> None:
    commit = GroupCommit(BrokenInbox(store), FakeClock(), max_delay=0)
    results = await asyncio.gather(*(commit.add(entry("x", str(i))) for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, StoreError) for r in results)
    await commit.close()


async def test_close_commits_what_waits_then_refuses_more(store: Store) -> None:
    installation = store.save_installation("t", "salla", credentials=b"", metadata={}, user_input={}).id
    inbox = Inbox(store)
    commit = GroupCommit(inbox, FakeClock(), max_delay=0.5)
    waiting = [asyncio.create_task(commit.add(entry(installation, str(i)))) for i in range(3)]
    await asyncio.sleep(0)
    await commit.close()
    assert [await w for w in waiting] == ["new"] * 3
    with pytest.raises(RuntimeError, match="closing"):
        await commit.add(entry(installation, "late"))


async def test_a_burst_is_crowded_commits_at_a_high_rate(store: Store) -> None:
    installation = store.save_installation("t", "salla", credentials=b"", metadata={}, user_input={}).id
    clock = FakeClock()
    commit = GroupCommit(Inbox(store), clock, max_delay=0, crowd=4, crowd_rate=10.0)
    await asyncio.gather(*(commit.add(entry(installation, f"a{i}")) for i in range(3)))
    assert not commit.busy()  # a small commit
    await asyncio.gather(*(commit.add(entry(installation, f"b{i}")) for i in range(8)))
    assert commit.rate() == 11.0
    assert commit.busy()  # crowded, and 11 deliveries in the last second
    clock.advance(0.1)
    assert not commit.busy()  # the crowd has passed
    slow = GroupCommit(Inbox(store), clock, max_delay=0, crowd=4, crowd_rate=100.0)
    await asyncio.gather(*(slow.add(entry(installation, f"c{i}")) for i in range(8)))
    assert not slow.busy()  # crowded once, but no burst: a stall of the loop does that
    await commit.close()
    await slow.close()


async def test_commits_are_remembered_for_a_second_only_even_when_the_rate_is_never_read(store: Store) -> None:
    # serve --processor separate: the processor (which reads the rate) is another process; the
    # receiver's group commit must not keep a record of every commit it ever made.
    installation = store.save_installation("t", "salla", credentials=b"", metadata={}, user_input={}).id
    clock = FakeClock()
    commit = GroupCommit(Inbox(store), clock, max_delay=0)
    for i in range(50):
        await commit.add(entry(installation, f"k{i}"))
        clock.advance(0.1)
    assert len(commit._recent) <= 11  # the last second's commits, not 50
    assert commit.rate() == 10.0
    await commit.close()


async def test_on_its_own_thread_a_commit_leaves_the_loop_free_and_the_next_batch_forms_meanwhile(store: Store) -> None:
    installation = store.save_installation("t", "salla", credentials=b"", metadata={}, user_input={}).id
    inbox, committer = HeldInbox(store), OwnThread("test-inbox")
    commit = GroupCommit(inbox, FakeClock(), max_delay=0, call=committer)
    first = asyncio.create_task(commit.add(entry(installation, "a")))
    assert await asyncio.to_thread(inbox.entered.wait, 10)  # the first commit is under way, and held
    later = [asyncio.create_task(commit.add(entry(installation, key))) for key in "bcd"]
    for _ in range(10):
        await asyncio.sleep(0)  # the loop keeps turning while the commit waits
    assert not first.done()
    assert not any(task.done() for task in later)  # nobody is answered before their commit (D25)
    inbox.release.set()
    assert await first == "new"
    assert await asyncio.gather(*later) == ["new"] * 3
    assert inbox.batches == [1, 3]  # the three that came during the first commit make the next one
    assert threading.get_ident() not in inbox.threads
    assert len(set(inbox.threads)) == 1  # one thread of its own, commit after commit
    await commit.close()
    committer.close()
