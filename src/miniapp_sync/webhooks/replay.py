"""Replay dead letters through the current definition (the one given now, not the one that failed).

A rejected record is mapped again with its resource's ``apiMapping`` and written as a bulk write
fetched when it was dead-lettered, so newer webhook data is not overwritten (D21). A failed
webhook delivery goes back through the processor: its inbox row is claimed again (or restored
from the dead letter when the row is gone). Success marks the dead letter replayed; failure keeps
it, with the new reason.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from miniapp_sync.runtime import MiniApp, Runtime
from miniapp_sync.store import DeadLetter, Inbox, RecordWrite, version_of
from miniapp_sync.store.webhook_model import InboxStatus
from miniapp_sync.webhooks.processor import Processor


@dataclass(frozen=True)
class Replayed:
    """How a replay went: ``ok``, and what was done or why it failed again."""

    dead_letter: DeadLetter
    ok: bool
    detail: str


@contextlib.asynccontextmanager
async def put_back_when_stopped(inbox: Inbox, id: int, status: InboxStatus) -> AsyncIterator[None]:
    """Put a row a replay claimed back to ``status`` when processing it stops short (its worker stopping).

    Left claimed, a stopped replay's row would wait for a restart's recovery and then be processed as
    an ordinary delivery, its dead letter left behind; put back, the replay's next run takes it again.
    """
    try:
        yield
    except BaseException:
        await asyncio.shield(asyncio.to_thread(inbox.put_back, id, status))
        raise


async def replay(runtime: Runtime, app: MiniApp, letter: DeadLetter, processor: Processor | None = None) -> Replayed:
    """Replay one dead letter with ``app``'s current mappings."""
    installation = await asyncio.to_thread(runtime.store.get_installation, letter.installation_id)
    if installation is None or installation.ns != app.ns:
        found = installation.ns if installation else "no installation"
        return Replayed(letter, False, f"dead letter {letter.id} belongs to {found!r}, not to {app.ns!r}")
    if letter.kind == "record":
        outcome = await asyncio.to_thread(_record, runtime, app, letter)
    else:
        outcome = await _webhook(runtime, app, letter, processor or Processor(runtime))
    if outcome.ok:
        await asyncio.to_thread(runtime.store.mark_replayed, letter.id)
    else:
        await asyncio.to_thread(Inbox(runtime.store).set_dead_letter_reason, letter.id, outcome.detail)
    return outcome


def _record(runtime: Runtime, app: MiniApp, letter: DeadLetter) -> Replayed:
    plan = app.plan.resources.get(letter.source)
    if plan is None:
        return Replayed(letter, False, f"the definition has no resource {letter.source!r} any more")
    mapped = plan.mapper(letter.payload)
    if mapped.rejected:
        return Replayed(letter, False, mapped.reason())
    code = str(mapped.data["code"])
    write = RecordWrite(code, mapped.data, version=version_of(mapped.data), fetched_at=letter.created_at)
    result = runtime.store.write_records(
        letter.installation_id, plan.content_type, [write], source="bulk", run_id=letter.run_id
    )
    what = "stale: a newer version is stored" if result.stale else "written" if result.written else "unchanged"
    return Replayed(letter, True, f"{plan.content_type} {code}: {what}")


async def _webhook(runtime: Runtime, app: MiniApp, letter: DeadLetter, processor: Processor) -> Replayed:
    inbox = processor.inbox
    inbox_id = letter.payload.get("inboxId") if isinstance(letter.payload, dict) else None
    row = await asyncio.to_thread(inbox.get, int(inbox_id)) if isinstance(inbox_id, int) else None
    if row is not None and row.status == "done":
        return Replayed(letter, True, f"inbox row {row.id} was processed already")
    if row is not None and await asyncio.to_thread(inbox.reopen, row.id):
        row = await asyncio.to_thread(inbox.get, row.id)
        assert row is not None
        async with put_back_when_stopped(inbox, row.id, "failed"):
            reason = await processor.replay(app, row)
    else:
        restored = await asyncio.to_thread(inbox.restore, letter.payload, letter.installation_id)
        row = await asyncio.to_thread(inbox.get, restored)
        assert row is not None
        reason = await processor.replay(app, row)
    if reason is not None:
        return Replayed(letter, False, reason)
    return Replayed(letter, True, f"inbox row {row.id} processed ({row.event or 'no event'})")
