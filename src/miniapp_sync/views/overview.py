"""The overview (D37): per MiniApp, what needs an operator's eye. ``GET /api/overview`` and the console's front page.

Both show this one view, so the figures cannot drift apart: installations by status, runs of
the last 24 hours by status, the inbox backlog and the age of its oldest delivery, dead letters
not yet replayed (deliveries given up on, bulk records), and the rejection trail by reason. Each
figure counts exactly the rows of the list the console links it to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from miniapp_sync.store import Store
from miniapp_sync.store.overview import Figures, figures
from miniapp_sync.views.models import maybe_timestamp, timestamp
from miniapp_sync.views.schema import Timestamp

RUNS_WINDOW: Final = 24 * 3600.0  # seconds of runs the overview counts


@dataclass(frozen=True, slots=True)
class MiniAppOverview:
    """One MiniApp's figures; a status or reason with nothing in it is absent from its map."""

    ns: str
    installations: dict[str, int]  # by status: connected, error, pending, uninstalled
    runs_last_24h: dict[str, int]  # by status: running, succeeded, failed, …
    inbox_backlog: int  # deliveries received and not yet processed
    oldest_unprocessed_at: Timestamp | None
    oldest_unprocessed_age_seconds: float | None
    dead_letters: int  # not yet replayed, both kinds: dead_deliveries' letters and record_dead_letters
    dead_deliveries: int  # webhook deliveries given up on (deliveries in state dead)
    record_dead_letters: int  # bulk records that could not be written, not yet replayed
    rejections: dict[str, int]  # refused deliveries by reason code (bad_signature, stale, too_large, unknown_tenant)

    @classmethod
    def of(cls, ns: str, f: Figures, now: float) -> MiniAppOverview:
        """Return the view of one MiniApp's figures at ``now``."""
        oldest = f.oldest_unprocessed
        age = None if oldest is None else round(max(0.0, now - oldest), 3)
        return cls(
            ns, dict(sorted(f.installations.items())), dict(sorted(f.runs.items())), f.backlog,
            maybe_timestamp(oldest), age, f.dead_letters, f.dead_deliveries, f.record_dead_letters,
            dict(sorted(f.rejections.items())),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class OverviewView:
    """Every MiniApp's figures (those served first, then any other the store holds), as of ``generated_at``."""

    generated_at: Timestamp
    miniapps: list[MiniAppOverview]


def overview(store: Store, served: Iterable[str]) -> OverviewView:
    """Return the overview of the store, with a row for each ``served`` MiniApp even when it holds nothing."""
    now = store.clock.now()
    found = figures(store, runs_since=now - RUNS_WINDOW)
    names = [*sorted(served), *sorted(set(found) - set(served))]
    return OverviewView(timestamp(now), [MiniAppOverview.of(ns, found.get(ns, Figures()), now) for ns in names])
