"""The lists the CLI and the API show, read a page at a time: one query per list, one shape (D37)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from miniapp_sync.errors import InstallationError
from miniapp_sync.runtime import Runtime
from miniapp_sync.store import DeadLetter, DeadLetterKind, Installation, InstallationStatus, Outbox, Store
from miniapp_sync.store.history import History
from miniapp_sync.store.replays import Replays
from miniapp_sync.store.run_search import FoundRun, RunFilter, RunSearch
from miniapp_sync.views.deliveries import DeliveryReplayView
from miniapp_sync.views.ids import record_key
from miniapp_sync.views.jobs import JobRunView
from miniapp_sync.views.models import (
    DeadLetterView,
    InstallationView,
    RecordChangeView,
    RecordView,
    SubscriptionView,
    TriggerEventView,
)
from miniapp_sync.views.pages import MAX_EVENT_ID as MAX_EVENT_ID  # re-exported: the API names them from here
from miniapp_sync.views.pages import MAX_EVENTS as MAX_EVENTS
from miniapp_sync.views.pages import Page, Window
from miniapp_sync.views.runs import RunView

# When the schedule next syncs an installation (None: never); only a process that serves the
# MiniApps knows their schedules (jobs.Work.next_sync_at), the others pass none.
NextSync = Callable[[Installation], float | None]


def installation_ids(store: Store, tenant: str | None, ns: str | None = None) -> list[str]:
    """Return the ids of a tenant's installations (of ``ns`` when given; every tenant's without one).

    A tenant with none is an error naming it, so a typo never reads as "nothing to show".
    """
    found = [i.id for i in store.list_installations(ns) if tenant is None or i.tenant == tenant]
    if not found and tenant is not None:
        raise InstallationError(f"tenant {tenant!r} has no installation" + (f" of {ns!r}" if ns else ""))
    return found


def _installation_views(store: Store, found: list[Installation], next_sync: NextSync | None) -> list[InstallationView]:
    latest = RunSearch(store).latest([i.id for i in found])  # one query for the page
    return [
        InstallationView.of(i, latest.get(i.id, []), next_sync(i) if next_sync is not None else None) for i in found
    ]


def installations(
    store: Store,
    window: Window,
    *,
    ns: str | None = None,
    status: InstallationStatus | None = None,
    next_sync: NextSync | None = None,
) -> Page[InstallationView]:
    """Return a page of installations (of ``ns``, in ``status``, when given), by tenant and ns, with their last runs."""
    found = store.list_installations(ns)  # one row per tenant and MiniApp: small enough to slice here
    if status is not None:
        found = [i for i in found if i.status == status]
    return window.page(_installation_views(store, found[window.offset : window.offset + window.fetch], next_sync))


def installation(store: Store, id: str, *, next_sync: NextSync | None = None) -> InstallationView | None:
    """Return one installation's view with its last runs, or None when there is no such installation."""
    found = store.get_installation(id)
    return None if found is None else _installation_views(store, [found], next_sync)[0]


def _run_views(store: Store, found: list[FoundRun]) -> list[RunView]:
    saved = RunSearch(store).checkpoints(sorted({f.run.installation_id for f in found}))
    now = store.clock.now()
    return [RunView.of(f.run, tenant=f.tenant, ns=f.ns, checkpoints=saved, now=now) for f in found]


def runs(store: Store, window: Window, where: RunFilter | None = None) -> Page[RunView]:
    """Return a page of the runs ``where`` selects (all when None), newest first, with tenant and MiniApp."""
    found = RunSearch(store).find(where or RunFilter(), limit=window.fetch, offset=window.offset)
    return window.page(_run_views(store, found))


def run(store: Store, id: str) -> RunView | None:
    """Return one run's view (its figures, errors, progress, checkpoints), or None when there is no such run."""
    found = RunSearch(store).one(id)
    return None if found is None else _run_views(store, [found])[0]


def runs_by_id(store: Store, ids: Sequence[str]) -> list[RunView]:
    """Return the views of these runs, in this order (those that exist)."""
    search = RunSearch(store)
    return _run_views(store, [f for id in ids if (f := search.one(id)) is not None])


def records(
    store: Store, window: Window, installation_ids: Sequence[str], content_type: str | None, code: str | None = None
) -> Page[RecordView]:
    """Return a page of the records of some installations (of one content type, of one code, when given)."""
    if len(installation_ids) == 1:  # the common case: the store seeks to the page
        found = store.list_records(
            installation_ids[0], content_type, limit=window.fetch, offset=window.offset, code=code
        )
        return window.page([RecordView.of(r) for r in found])
    # A tenant with several MiniApps: the page is cut from the installations' merged order.
    merged = [
        r
        for installation_id in installation_ids
        for r in store.list_records(installation_id, content_type, limit=window.offset + window.fetch, code=code)
    ]
    merged.sort(key=lambda r: (r.content_type, r.code, r.installation_id))
    return window.page([RecordView.of(r) for r in merged[window.offset : window.offset + window.fetch]])


def record(store: Store, id: str) -> RecordView | None:
    """Return one record's view by its id (soft-deleted ones included), or None when there is no such record."""
    key = record_key(id)
    found = None if key is None else store.get_record(*key)
    return None if found is None else RecordView.of(found)


def record_history(store: Store, window: Window, id: str) -> Page[RecordChangeView] | None:
    """Return a page of a record's changes, newest first (D39), or None when there is no such record."""
    key = record_key(id)
    if key is None or store.get_record(*key) is None:
        return None
    found = History(store).timeline(*key, limit=window.fetch, offset=window.offset)
    return window.page([RecordChangeView.of(c) for c in found])


def dead_letters(
    runtime: Runtime,
    window: Window,
    *,
    installation_ids: Sequence[str] | None = None,
    kind: DeadLetterKind | None = None,
    include_replayed: bool = False,
) -> Page[DeadLetterView]:
    """Return a page of dead letters, oldest first (the order to replay them in), secrets masked."""
    found = runtime.store.list_dead_letters(
        installation_ids=installation_ids,
        kind=kind,
        include_replayed=include_replayed,
        limit=window.fetch,
        offset=window.offset,
    )
    # A page is usually one installation's letters: read and decrypt its credentials once, not per letter.
    known: dict[str, tuple[Installation | None, dict[str, Any]]] = {}
    return window.page([_dead_letter(runtime, letter, known) for letter in found])


def dead_letter(runtime: Runtime, letter_id: int) -> DeadLetterView | None:
    """Return one dead letter's view, or None when there is no such letter."""
    letter = runtime.store.get_dead_letter(letter_id)
    return None if letter is None else _dead_letter(runtime, letter, {})


def _dead_letter(
    runtime: Runtime, letter: DeadLetter, known: dict[str, tuple[Installation | None, dict[str, Any]]]
) -> DeadLetterView:
    """Return a dead letter's view, with its installation's credential values masked (D30)."""
    if letter.installation_id not in known:
        installation = runtime.store.get_installation(letter.installation_id)
        known[letter.installation_id] = (
            installation,
            runtime.installations.credentials(installation) if installation else {},
        )
    installation, credentials = known[letter.installation_id]
    return DeadLetterView.of(letter, installation, credentials)


def events(store: Store, *, tenant: str, ns: str | None, after: int, limit: int) -> Page[TriggerEventView]:
    """Return a tenant's trigger events after the ``after`` cursor, oldest first.

    Events are a stream: ``next`` is always a cursor (the last id seen), to pull again from later.
    """
    found = Outbox(store).events(tenant, ns=ns, after=after, limit=limit)
    return Page([TriggerEventView.of(e) for e in found], str(found[-1].id) if found else str(after))


def subscriptions(store: Store, *, tenant: str | None = None, ns: str | None = None) -> Page[SubscriptionView]:
    """Return every subscription (of a tenant and MiniApp when given): a short list, in one page."""
    return Page([SubscriptionView.of(s) for s in Outbox(store).subscriptions(tenant, ns)], None)


def job_run(store: Store, id: str) -> JobRunView:
    """Return what a job came to: the sync run it started, or the delivery replay it runs (both null while it waits)."""
    runs = store.runs_of_job(id)
    replay = None if runs else Replays(store).of_job(id)
    return JobRunView(
        id, runs_by_id(store, [runs[0].id])[0] if runs else None, DeliveryReplayView.of(replay) if replay else None
    )
