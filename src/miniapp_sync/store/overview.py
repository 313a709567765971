"""The operator's overview figures, per MiniApp: a handful of grouped counts, each one query.

Inbox rows and rejections carry their ``ns``; runs and dead letters are counted through their
installation. Nothing here reads a body or a payload: the overview must stay cheap to poll.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import func, select

from miniapp_sync.store.deliveries import REASON_CODE
from miniapp_sync.store.store import Store
from miniapp_sync.store.tables import dead_letters, installations, sync_runs
from miniapp_sync.store.webhook_tables import webhook_inbox, webhook_rejections

UNPROCESSED: Final = ("pending", "processing")  # the inbox backlog: received, not yet settled
# The backlog as the deliveries list names its states: waiting, being processed, waiting to be retried.
BACKLOG_STATES: Final = ("pending", "processing", "failed")


@dataclass(slots=True)
class Figures:
    """One MiniApp's counts: installations by status, runs since a time by status, inbox, dead letters, rejections."""

    installations: dict[str, int] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    backlog: int = 0
    oldest_unprocessed: float | None = None  # when the oldest unprocessed delivery was received
    dead_letters: int = 0  # not yet replayed, of both kinds
    record_dead_letters: int = 0  # bulk records not yet replayed (the dead letters list, kind record)
    dead_deliveries: int = 0  # inbox rows given up on (the deliveries list, state dead)
    rejections: dict[str, int] = field(default_factory=dict)  # by reason code, as the deliveries list filters


def figures(store: Store, *, runs_since: float) -> dict[str, Figures]:
    """Return each MiniApp's figures (MiniApps with nothing stored are absent); runs count from ``runs_since``."""
    out: dict[str, Figures] = defaultdict(Figures)
    i, r, d = installations.c, sync_runs.c, dead_letters.c
    inbox, rejected = webhook_inbox.c, webhook_rejections.c
    with store.database.read("count the overview's figures") as conn:
        for ns, status, count in conn.execute(select(i.ns, i.status, func.count()).group_by(i.ns, i.status)):
            out[ns].installations[status] = int(count)
        runs = (
            select(i.ns, r.status, func.count())
            .join(installations, i.id == r.installation_id)
            .where(r.started_at >= runs_since)
            .group_by(i.ns, r.status)
        )
        for ns, status, count in conn.execute(runs):
            out[ns].runs[status] = int(count)
        backlog = (
            select(inbox.ns, func.count(), func.min(inbox.received_at))
            .where(inbox.status.in_(UNPROCESSED))
            .group_by(inbox.ns)
        )
        for ns, count, oldest in conn.execute(backlog):
            out[ns].backlog, out[ns].oldest_unprocessed = int(count), oldest
        dead = select(inbox.ns, func.count()).where(inbox.status == "failed").group_by(inbox.ns)
        for ns, count in conn.execute(dead):
            out[ns].dead_deliveries = int(count)
        letters = (
            select(i.ns, d.kind, func.count())
            .join(installations, i.id == d.installation_id)
            .where(d.replayed_at.is_(None))
            .group_by(i.ns, d.kind)
        )
        for ns, kind, count in conn.execute(letters):
            out[ns].dead_letters += int(count)
            if kind == "record":
                out[ns].record_dead_letters = int(count)
        reasons = select(rejected.ns, REASON_CODE, func.count()).group_by(rejected.ns, REASON_CODE)
        for ns, reason, count in conn.execute(reasons):
            out[ns].rejections[reason] = int(count)
    return dict(out)
