"""Detail views (D37) an operator reads in the console: an installation's state, a trigger event's deliveries.

Secrets never reach them: credentials show only whether each is set, and checkpoints (which
may hold a provider's next link) are masked with the installation's credential values (D30).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from miniapp_sync.provider.redaction import Redactor
from miniapp_sync.runtime import Runtime
from miniapp_sync.store import Outbox, Store
from miniapp_sync.store.outbox import DeliveryState, DeliveryStatus
from miniapp_sync.store.run_search import RunSearch
from miniapp_sync.views.models import InstallationView, TriggerEventView, maybe_timestamp
from miniapp_sync.views.pages import Page
from miniapp_sync.views.queries import NextSync
from miniapp_sync.views.runs import RunView
from miniapp_sync.views.schema import Timestamp


@dataclass(frozen=True, slots=True)
class ResourceStateView:
    """One resource of an installation: whether it syncs, where its next run resumes, its last run."""

    key: str
    enabled: bool
    checkpoint: dict[str, Any] | None
    last_run: RunView | None


@dataclass(frozen=True, slots=True)
class InstallationDetailView:
    """An installation with its resources and which credentials are set (never their values)."""

    installation: InstallationView
    resources: list[ResourceStateView]
    credentials: dict[str, bool]  # name → set (a non-empty value is stored)
    served: bool  # this process serves its MiniApp: it can sync and reconnect


@dataclass(frozen=True, slots=True)
class TriggerDeliveryView:
    """How far the delivery of one trigger event to one subscription got."""

    subscription_id: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: Timestamp | None
    delivered_at: Timestamp | None
    error: str | None

    @classmethod
    def of(cls, d: DeliveryState) -> TriggerDeliveryView:
        """Return the view of a delivery state."""
        return cls(
            d.subscription_id, d.status, d.attempts, maybe_timestamp(d.next_attempt_at),
            maybe_timestamp(d.delivered_at), d.error,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class RedeliveryView:
    """A failed trigger delivery made due again: how it stood before, and the deliver job that sends it (D36)."""

    event_id: str
    delivery: TriggerDeliveryView
    job_id: str | None  # null: a deliver job already waiting sends it


@dataclass(frozen=True, slots=True)
class TriggerEventDetailView:
    """A trigger event and its delivery to each subscription."""

    event: TriggerEventView
    deliveries: list[TriggerDeliveryView]


def installation_detail(
    runtime: Runtime, id: str, *, next_sync: NextSync | None = None
) -> InstallationDetailView | None:
    """Return an installation's detail, or None when there is no such installation.

    Its last run per resource comes from the runs search (``RunSearch.latest``), as the lists' do.
    """
    store = runtime.store
    installation = store.get_installation(id)
    if installation is None:
        return None
    bag = runtime.installations.credentials(installation)
    redactor = Redactor(str(v) for v in bag.values() if isinstance(v, str | int) and str(v))
    app = runtime.apps.get(installation.ns)
    declared = app.definition.sync.resources if app and app.definition.sync else {}
    latest = RunSearch(store).latest([id]).get(id, [])
    now = store.clock.now()
    last = {run.resource: RunView.of(run, tenant=installation.tenant, ns=installation.ns, now=now) for run in latest}
    resources = []
    for key, resource in declared.items():
        checkpoint = store.get_checkpoint(id, key)
        masked = None if checkpoint is None else orjson.loads(redactor.values(orjson.dumps(checkpoint).decode()))
        resources.append(ResourceStateView(key, resource.enabled, masked, last.get(key)))
    credentials = {name: value not in (None, "") for name, value in sorted(bag.items())}
    view = InstallationView.of(installation, latest, next_sync(installation) if next_sync is not None else None)
    return InstallationDetailView(view, resources, credentials, app is not None)


def events(store: Store, *, tenant: str, ns: str | None, after: int, limit: int) -> Page[TriggerEventDetailView]:
    """Return a tenant's trigger events after the ``after`` cursor, oldest first, each with its deliveries.

    As in the pull API, ``next`` is always a cursor (the last id seen).
    """
    outbox = Outbox(store)
    found = outbox.events(tenant, ns=ns, after=after, limit=limit)
    items = [
        TriggerEventDetailView(TriggerEventView.of(e), [TriggerDeliveryView.of(d) for d in outbox.deliveries(e.id)])
        for e in found
    ]
    return Page(items, str(found[-1].id) if found else str(after))
