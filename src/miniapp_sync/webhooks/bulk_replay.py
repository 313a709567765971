"""Replay webhook deliveries in bulk (issue 15): one, several, or all matching a filter, as a job (D36).

A selection is ``{"ids": [...]}`` (delivery ids) or ``{"filter": {...}}`` (``DeliveryFilter``, the
list's filter). Each selected delivery is decided first, the same way for the preview and the
job, so that a preview says exactly what the job would do:

- ``dead`` (given up on, dead-lettered) and ``failed`` (waiting for its next attempt) are
  processed again, once, through the definition loaded now: a dead letter through
  ``webhooks.replay`` (it is marked replayed when it succeeds), a waiting one claimed from the
  queue (it goes back to its retry schedule when it fails again);
- ``unmatched`` is refused: it has no installation, and guessing one could write into another
  tenant's records; ``inbox assign`` gives it one, and processes it;
- ``rejected`` is refused: its body was never kept (D24a);
- anything else (processed, ignored, pending, …) is skipped: replaying a processed delivery
  would process it twice.

Processing goes through the inbox's own path, so the dedupe rules hold and a delivery's trigger
event is emitted at most once (the outbox keeps one event per inbox row); a second replay of the
same selection finds nothing left to do.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from miniapp_sync.errors import UsageError, WebhookError
from miniapp_sync.runtime import MiniApp, Runtime
from miniapp_sync.store import Inbox
from miniapp_sync.store.deliveries import FILTER_FIELDS, REASONS, STATES, Deliveries, Delivery, DeliveryFilter
from miniapp_sync.store.replays import Replay, Replays
from miniapp_sync.store.webhook_model import InboxStatus
from miniapp_sync.webhooks.processor import Processor
from miniapp_sync.webhooks.replay import put_back_when_stopped
from miniapp_sync.webhooks.replay import replay as replay_letter

if TYPE_CHECKING:
    from miniapp_sync.jobs import JobQueue  # for its type only: jobs import this module

MAX_REPLAY: Final = 1000  # deliveries one replay takes at most (a filter: the oldest that match)
Decision = Literal["replay", "refused", "skipped"]
Outcome = Literal["processed", "failed", "refused", "skipped"]


@dataclass(frozen=True, slots=True)
class Planned:
    """A selected delivery and what a replay does with it."""

    delivery: Delivery
    decision: Decision
    detail: str


def parse_filter(data: dict[str, Any], field: str = "filter") -> DeliveryFilter:
    """Return the ``DeliveryFilter`` of a stored selection; raise UsageError naming a field that cannot be one."""
    unknown = sorted(set(data) - set(FILTER_FIELDS))
    if unknown:
        raise UsageError(f"{field}.{unknown[0][:40]}: not a filter field (known: {', '.join(FILTER_FIELDS)})")
    for name in ("tenant", "ns", "event", "q"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise UsageError(f"{field}.{name}: expected a string")
    for name in ("since", "until"):
        if data.get(name) is not None and not isinstance(data[name], int | float):
            raise UsageError(f"{field}.{name}: expected epoch seconds")
    status = data.get("status")
    states = [status] if isinstance(status, str) else status  # one state, or several (any of them)
    if states is not None and (not isinstance(states, list) or not states or any(s not in STATES for s in states)):
        raise UsageError(f"{field}.status: expected one of {', '.join(STATES)}, or a list of them")
    if data.get("reason") is not None and data["reason"] not in REASONS:
        raise UsageError(f"{field}.reason: expected one of {', '.join(REASONS)}")
    given: dict[str, Any] = {k: data.get(k) for k in FILTER_FIELDS}
    return DeliveryFilter(**{**given, "status": None if states is None else tuple(states)})


def definition_version(app: MiniApp | None) -> dict[str, Any]:
    """Return what a delivery would be processed against: the declared version and the loaded definition's digest."""
    if app is None:
        return {"version": None, "digest": None}
    return {"version": app.definition.version, "digest": app.digest}


def select(runtime: Runtime, selection: dict[str, Any], *, gone: list[str] | None = None) -> list[Delivery]:
    """Return the deliveries a selection names, oldest first; raise UsageError for an id that names none.

    With ``gone`` (a job running a selection checked when it was queued) such an id is added to it
    instead: its delivery was purged since.
    """
    deliveries = Deliveries(runtime.store)
    if "ids" in selection:
        ids = list(dict.fromkeys(selection["ids"]))  # each once
        if len(ids) > MAX_REPLAY:
            raise UsageError(f"ids: at most {MAX_REPLAY} deliveries per replay, found {len(ids)}")
        found = []
        for id in ids:
            delivery = deliveries.get(str(id))
            if delivery is None and gone is not None:
                gone.append(str(id))
            elif delivery is None:
                raise UsageError(f"no delivery {str(id)[:40]!r} (see `miniapp-sync deliveries`)")
            else:
                found.append(delivery)
        return sorted(found, key=lambda d: (d.kind, d.received_at, d.id))
    chosen = parse_filter(selection.get("filter") or {})
    rows = deliveries.replayable(chosen, limit=MAX_REPLAY)
    return [d for id in rows if (d := deliveries.get(str(id))) is not None]


def plan(runtime: Runtime, deliveries: list[Delivery]) -> list[Planned]:
    """Decide what a replay does with each delivery (the module docstring's rules)."""
    planned = []
    for d in deliveries:
        if d.kind == "rejection":
            why = f"refused at the door ({d.reason}): its body was not kept, so it cannot be replayed"
            planned.append(Planned(d, "refused", why))
        elif d.state == "unmatched":
            why = (
                f"no installation: give it one with `miniapp-sync inbox assign {d.id} --installation …` "
                f"(or POST /api/inbox/{d.id}/assign), which processes it"
            )
            planned.append(Planned(d, "refused", why))
        elif d.state in ("dead", "failed"):
            if d.ns not in runtime.apps:
                planned.append(Planned(d, "refused", f"no definition of {d.ns!r} is loaded here"))
            else:
                planned.append(Planned(d, "replay", f"{d.state}: processed again"))
        else:
            why = "processed already: a replay would process it twice" if d.state in ("processed", "reused_id") else ""
            planned.append(Planned(d, "skipped", why or f"{d.state}: nothing to replay"))
    return planned


def preview(runtime: Runtime, selection: dict[str, Any]) -> dict[str, Any]:
    """Return what replaying ``selection`` would do, changing nothing."""
    planned = plan(runtime, select(runtime, selection))
    replayed = [p.delivery for p in planned if p.decision == "replay"]
    tenants = {i.id: i.tenant for i in runtime.store.list_installations()}
    by_installation = Counter(d.installation_id or "" for d in replayed)
    return {
        "count": len(replayed),
        "refused": sum(p.decision == "refused" for p in planned),
        "skipped": sum(p.decision == "skipped" for p in planned),
        "byEvent": dict(Counter(d.event or "(no event)" for d in replayed)),
        "byInstallation": [
            {"installationId": iid, "tenant": tenants.get(iid), "count": n}
            for iid, n in sorted(by_installation.items())
        ],
        "definitions": {ns: definition_version(runtime.apps.get(ns)) for ns in sorted({d.ns for d in replayed})},
        "items": [_item(p.delivery, p.decision, p.detail) for p in planned],
    }


def replay_ns(runtime: Runtime, selection: dict[str, Any]) -> str:
    """Return the one MiniApp a replay of ``selection`` concerns; raise WebhookError when it spans several or none."""
    planned = plan(runtime, select(runtime, selection))
    names = sorted({p.delivery.ns for p in planned if p.decision == "replay"})
    if len(names) > 1:
        raise WebhookError(
            f"the selection spans the MiniApps {', '.join(names)}: a replay runs on the workers of one; "
            "replay each with its ns"
        )
    if not names:
        raise WebhookError("nothing to replay: no selected delivery is dead or failed (see the preview)")
    return names[0]


async def queue(runtime: Runtime, jobs: JobQueue, selection: dict[str, Any]) -> Replay:
    """Record a replay of ``selection`` and queue its job (D36); raise WebhookError when there is nothing to replay."""
    ns = await asyncio.to_thread(replay_ns, runtime, selection)
    if "filter" in selection:  # the job reads the filter again: only this MiniApp's deliveries
        selection = {"filter": {**selection["filter"], "ns": ns}}
    replays = Replays(runtime.store)
    replay = await asyncio.to_thread(replays.create, ns, selection)
    receipt = await jobs.replay_deliveries(ns, replay.id)
    await asyncio.to_thread(replays.queued, replay.id, receipt.id)
    return dataclasses.replace(replay, job_id=receipt.id)


async def run(runtime: Runtime, replay: Replay, processor: Processor | None = None) -> dict[str, Any]:
    """Run a recorded replay to its report; the replay row says how it ended."""
    replays = Replays(runtime.store)
    processor = processor or Processor(runtime)
    gone: list[str] = []
    planned = await asyncio.to_thread(lambda: plan(runtime, select(runtime, replay.selection, gone=gone)))
    # The job runs again when its worker stopped midway (D36): it must take the same deliveries,
    # not what the filter matches by then (the one it was processing went back to its state; those
    # it finished are skipped as processed). So the selection is kept as the ids it resolved to
    # replay (not those it skips: old processed rows, which retention may purge meanwhile).
    resolved = {**replay.selection, "ids": [p.delivery.id for p in planned if p.decision == "replay"]}
    await asyncio.to_thread(replays.start, replay.id, resolved)
    items: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    still_dead = 0
    for p in planned:
        outcome: Outcome = p.decision if p.decision != "replay" else "processed"
        detail = p.detail
        if p.decision == "replay" and p.delivery.ns != replay.ns:
            outcome, detail = "refused", f"a {p.delivery.ns} delivery: this replay is of {replay.ns}"
        elif p.decision == "replay":
            ok, detail = await _process(runtime, runtime.apps[replay.ns], processor, p.delivery)
            outcome = "processed" if ok else "failed"
            still_dead += not ok and p.delivery.state == "dead"
        counts[outcome] += 1
        items.append(_item(p.delivery, outcome, detail))
    report = {
        "processed": counts["processed"],
        "failed": counts["failed"],
        "stillDead": still_dead,
        "refused": counts["refused"],
        "skipped": counts["skipped"],
        "gone": gone,  # selected ids whose delivery was purged before the job ran
        "definition": definition_version(runtime.apps.get(replay.ns)),
        "installations": sorted({p.delivery.installation_id for p in planned if p.delivery.installation_id}),
        "items": items,
    }
    await asyncio.to_thread(replays.finish, replay.id, "done", report)
    return report


async def _process(runtime: Runtime, app: MiniApp, processor: Processor, delivery: Delivery) -> tuple[bool, str]:
    """Process one dead or failed delivery once; return whether it succeeded and what happened."""
    inbox: Inbox = processor.inbox
    detail = await asyncio.to_thread(Deliveries(runtime.store).detail, delivery.id)
    if delivery.state == "dead" and detail is not None and detail.dead_letter_id is not None:
        letter = await asyncio.to_thread(runtime.store.get_dead_letter, detail.dead_letter_id)
        if letter is not None:
            outcome = await replay_letter(runtime, app, letter, processor)
            return outcome.ok, outcome.detail
    number = int(delivery.id)
    status: InboxStatus = "failed" if delivery.state == "dead" else "pending"
    if not await asyncio.to_thread(inbox.reclaim, number, status):
        return False, "it changed meanwhile (a drain took it, or another replay): left alone"
    row = await asyncio.to_thread(inbox.get, number)
    assert row is not None
    async with put_back_when_stopped(inbox, number, status):
        reason = await processor.replay(app, row)
    if reason is None:
        if detail is not None and detail.dead_letter_id is not None:  # a dead one whose claim a restart put back
            await asyncio.to_thread(runtime.store.mark_replayed, detail.dead_letter_id)
        return True, f"inbox row {number} processed ({row.event or 'no event'})"
    if delivery.state == "failed":  # back to its retry schedule, as if this attempt had been one of them
        when = delivery.next_attempt_at or runtime.clock.now()
        await asyncio.to_thread(inbox.retry_at, number, when, reason)
    return False, reason


def _item(d: Delivery, outcome: str, detail: str) -> dict[str, Any]:
    return {
        "id": d.id,
        "ns": d.ns,
        "installationId": d.installation_id,
        "event": d.event,
        "state": d.state,
        "outcome": outcome,
        "detail": detail,
    }
