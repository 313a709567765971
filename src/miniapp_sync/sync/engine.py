"""Bulk runs: list → details → map → validate → batched upsert with the checkpoint → report.

One run syncs one installation's enabled resources, one after another, under one rate budget
(D5). Records are streamed: at most one batch being written, one being filled and one page (two
with details: the next page's are fetched meanwhile) are held in memory. The checkpoint of a
page is written in the same transaction as the page's last records (D6), so a run killed at
any moment resumes from the last committed page and converges on the records a clean run
produces (writes are upserts by code, D20).

Batches are written one at a time and in order, so a checkpoint never commits before the pages
it covers: decided in the event loop on SQLite (its statements and commit on the store's
committer thread), in a worker thread on PostgreSQL (see ``batches.BatchWriter``).

Every other store call of a run (its start and end, the checkpoint read, the installation read,
progress heartbeats, dead letters) is made the backend's way too (``inline_writes``): inline on
SQLite, in a thread on PostgreSQL. A worker runs many runs on one event loop, and a network round
trip made on it stalls every other run's rate limiter and requests: a limiter that wakes late
never catches up (it paces, D5), so each stall was budget lost by every installation on the worker.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING, Any

import aiohttp

from miniapp_sync import logs
from miniapp_sync.clock import Clock, SystemClock
from miniapp_sync.definition.model import Definition
from miniapp_sync.errors import InstallationError, MiniAppSyncError
from miniapp_sync.installations import Installations
from miniapp_sync.installations.provider import provider_client
from miniapp_sync.mapping.phones import default_country, with_normal_phone
from miniapp_sync.mapping.plan import MappingPlan, ResourcePlan
from miniapp_sync.mapping.records import MappedRecord
from miniapp_sync.provider.client import ProviderClient
from miniapp_sync.provider.details import DetailResult, with_details, without_details
from miniapp_sync.provider.fanout import DEFAULT_MAX_IN_FLIGHT, FanOut
from miniapp_sync.provider.messages import Refreshed
from miniapp_sync.provider.pagination import Page, pages
from miniapp_sync.provider.ratelimit import RateLimiter, limiter_for
from miniapp_sync.provider.redaction import Redactor
from miniapp_sync.provider.retry import DEFAULT_MAX_RETRY_AFTER, RetryPolicy
from miniapp_sync.store import Installation, RecordWrite, Run, Store
from miniapp_sync.sync.batches import BatchWriter, record_write
from miniapp_sync.sync.collector import GC
from miniapp_sync.sync.reports import Progress, ResourceReport, RunReport, failure_of
from miniapp_sync.sync.resources import select_resources
from miniapp_sync.sync.runs import INTERRUPTED, Heartbeat, Processes
from miniapp_sync.templating import render_headers
from miniapp_sync.webhooks.concurrency import caller
from miniapp_sync.webhooks.providers import provider_of

if TYPE_CHECKING:
    from miniapp_sync.sync.metrics import SyncMetrics  # prometheus_client: only processes that export load it

log = logging.getLogger("miniapp_sync.sync")

# List pages in flight for a resource without details: its listing is the whole walk. A resource
# with details lists one page at a time: its detail calls pace the walk (a page of 100 takes 25 s
# at 4 requests/s), and with_details already lists the next page while this one's details are
# out, so pages fetched further ahead only waited as undecoded bodies (~0.5 MiB an installation
# syncing products and orders; issue 17 item 5).
PAGE_CONCURRENCY = 4

# (installation id, rate, clock) → that installation's limiter. The default keeps one per process;
# a runtime on PostgreSQL passes one whose budget every worker shares (D34).
LimiterFactory = Callable[[str, float, Clock], RateLimiter]
# A source record as a run keeps it: mapped, its incremental cursor's value, and itself only when
# the mapping rejected it (its dead letter carries it).
Settled = tuple[MappedRecord, Any, dict[str, Any] | None]


class SyncEngine:
    """Runs bulk syncs for installations into the store."""

    def __init__(
        self,
        store: Store,
        installations: Installations,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        session: aiohttp.ClientSession | None = None,
        limiters: LimiterFactory = limiter_for,
        inline_writes: bool = True,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        processes: Processes | None = None,
        metrics: SyncMetrics | None = None,
    ) -> None:
        self.store = store
        self.inline_writes = inline_writes
        self._call = caller(inline_writes)  # how store calls are made: inline (SQLite) or in a thread
        self.max_retry_after = max_retry_after
        self.processes = processes or Processes()
        # Set by the process that exports them (serve, worker); a one-off `sync` counts nothing.
        self.metrics = metrics
        self.installations = installations
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self._session = session
        self.limiters = limiters

    async def run(
        self,
        definition: Definition,
        plan: MappingPlan,
        installation: Installation,
        *,
        resources: list[str] | None = None,
        progress: Progress | None = None,
        job_id: str | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        full: bool = False,
    ) -> RunReport:
        """Sync the enabled resources (or those named) of one installation; never raise for a resource.

        Detail requests in flight follow the budget and the provider's latency, up to ``max_in_flight``.
        ``job_id`` names the queue's job that runs it: the run records it, so the job leads to its run.
        ``full`` ignores the checkpoints: every resource is listed from its first page, whole.
        """
        if max_in_flight < 1:
            raise MiniAppSyncError(f"max_in_flight must be at least 1, not {max_in_flight}")
        selected = select_resources(definition, resources)
        if installation.status != "connected":
            raise InstallationError(
                f"installation {installation.id} ({installation.tenant}) is {installation.status}"
                + (f": {installation.error}" if installation.error else "")
                + "; reconnect it before syncing"
            )
        run = await self._call(self.start_run, installation.id, resources, job_id=job_id)
        report = RunReport(run.id, installation.id)
        try:
            await self._run(definition, plan, installation, selected, report, progress, max_in_flight, full)
        except (asyncio.CancelledError, KeyboardInterrupt):
            # Ctrl-C, SIGTERM, a server shutting down: the run ends, resumable from its checkpoint (D38).
            report.status = "interrupted"
            stats = report.as_dict()["resources"]
            # Inline even on PostgreSQL: the process may be on its way out (KeyboardInterrupt
            # breaks the loop), and the run must be closed before it goes; this happens once.
            self.store.finish_run(run.id, status="interrupted", stats=stats, error=INTERRUPTED)
            if self.metrics is not None:
                self.metrics.run_done(definition.ns or "", "interrupted")
            raise
        return report

    def start_run(self, installation_id: str, resources: list[str] | None = None, *, job_id: str | None = None) -> Run:
        """Record a run of ``resources`` (None: every enabled one) as started by this process (and job)."""
        resource = resources[0] if resources and len(resources) == 1 else None
        return self.store.start_run(installation_id, resource, owner=str(self.processes.current()), job_id=job_id)

    async def _run(
        self,
        definition: Definition,
        plan: MappingPlan,
        installation: Installation,
        selected: list[str],
        report: RunReport,
        progress: Progress | None,
        max_in_flight: int,
        full: bool,
    ) -> None:
        sync = definition.sync
        assert sync is not None
        run_id = report.run_id

        def stats() -> dict[str, dict[str, Any]]:
            return {k: r.as_dict() for k, r in report.resources.items()}

        beat = Heartbeat(self.store, run_id, self.clock, progress, stats, call=self._call)
        # The run's redaction set: the installation's secrets now, and every one received while it
        # runs (a refreshed token joins it before it is sent, D31b). Nothing is stored unredacted.
        redactor = Redactor(self.installations.secrets_of(definition, installation))
        session = self._session or aiohttp.ClientSession()
        try:
            with GC.relaxed(), logs.bound(run_id=run_id, installation=installation.id, tenant=installation.tenant):
                for key in selected:
                    resource_report = ResourceReport(key, sync.resources[key].content_type)
                    report.resources[key] = resource_report
                    started = time.perf_counter()
                    try:
                        await self._resource(
                            definition,
                            plan.resources[key],
                            installation,
                            run_id,
                            session,
                            resource_report,
                            beat,
                            max_in_flight,
                            redactor,
                            full,
                        )
                    except MiniAppSyncError as exc:
                        resource_report.error = redactor.values(str(exc))
                        resource_report.failure = failure_of(exc, resource_report.error, redactor)
                    resource_report.seconds = time.perf_counter() - started
                    if self.metrics is not None:
                        self.metrics.resource_done(definition.ns or "", resource_report)
                    if progress:
                        progress(resource_report, None)
        finally:
            if self._session is None:
                await session.close()
        report.status = (
            "failed"
            if report.failed
            else "partial"
            if any(r.rejected for r in report.resources.values())
            else "succeeded"
        )
        errors = "; ".join(f"{k}: {r.error}" for k, r in report.resources.items() if r.error) or None
        done = stats()
        last = beat.figures(done, None)
        await self._call(self.store.finish_run, run_id, status=report.status, stats=done, error=errors, progress=last)
        if self.metrics is not None:
            self.metrics.run_done(definition.ns or "", report.status)
        log.info(
            "sync run finished",
            extra={"run_id": run_id, "installation": installation.id, "tenant": installation.tenant,
                   "status": report.status, "error": errors},
        )  # fmt: skip

    async def _client(
        self,
        definition: Definition,
        installation_id: str,
        session: aiohttp.ClientSession,
        redactor: Redactor,
    ) -> ProviderClient:
        sync = definition.sync
        assert sync is not None
        # Read now, not when the run started: an earlier resource may have refreshed the token.
        installations = self.installations
        installation = await self._call(installations.get, installation_id)
        sent = [installations.credentials(installation).get("accessToken")]  # the token this client sends

        async def refreshed() -> Refreshed:
            await installations.refresh(definition, installation_id, seen_token=sent[0])
            fresh = await self._call(installations.get, installation_id)
            secrets = installations.secrets_of(definition, fresh)
            redactor.add(secrets)  # before the new token is sent anywhere, or can be echoed back
            sent[0] = installations.credentials(fresh).get("accessToken")
            headers = render_headers(sync.headers, installations.context(definition, fresh), "sync.headers")
            return Refreshed(headers, tuple(secrets))

        auth = definition.auth
        return await provider_client(
            definition,
            installations.context(definition, installation),
            egress=installations.egress,
            session=session,
            clock=self.clock,
            limiter=self.limiters(installation.id, sync.sync_configuration.rate_limit_per_second, self.clock),
            retry=RetryPolicy(random=self.rng, max_retry_after=self.max_retry_after),
            secrets=redactor.secrets,
            on_unauthorized=refreshed if auth is not None and auth.auto_refresh and auth.refresh_token else None,
        )

    async def _resource(
        self,
        definition: Definition,
        plan: ResourcePlan,
        installation: Installation,
        run_id: str,
        session: aiohttp.ClientSession,
        report: ResourceReport,
        progress: Heartbeat,
        max_in_flight: int,
        redactor: Redactor,
        full: bool = False,
    ) -> None:
        assert definition.sync is not None
        resource = definition.sync.resources[plan.key]
        batch_size = definition.sync.sync_configuration.batch_size
        stored = None if full else await self._call(self.store.get_checkpoint, installation.id, plan.key)
        state = stored or {}
        params: dict[str, Any] = {}
        if state.get("done"):
            # The last run finished: start over, asking only for what changed when incremental.
            if resource.incremental and state.get("since"):
                params[resource.incremental.param] = state["since"]
            state = {}
        elif state:
            report.resumed_from = {k: v for k, v in state.items() if k != "began"}
        began = float(state.get("began", self.clock.now()))
        since = state.get("since")
        client = await self._client(definition, installation.id, session, redactor)
        writer = BatchWriter(self.store, installation.id, plan, run_id, report, inline=self.inline_writes)
        buffer: list[RecordWrite] = []
        errors_seen = False
        total: int | None = None
        mapper = plan.mapper
        # Customers' phones are stored in E.164, as webhook customer matching looks them up (D28).
        customers = plan.content_type == "core:customer"
        country = default_country(installation.metadata, installation.user_input, provider_of(definition))
        cursor_field = resource.incremental.cursor_field if resource.incremental else None

        def settle(record: dict[str, Any]) -> Settled:
            # Mapped as it arrives (with details: as its detail call answers), so a run holds its
            # mapped records, not the provider's (an order ~2.5 KB of objects instead of ~22 KB).
            mapped = mapper(record)
            if mapped.rejected:
                return mapped, None, record  # the source record, for its dead letter
            if customers:
                mapped = with_normal_phone(mapped, country) or mapped
            return mapped, None if cursor_field is None else record.get(cursor_field), None

        detailed = resource.expand_details and resource.endpoints.details is not None
        listing = pages(
            client,
            resource,
            start=_paging_state(state),
            params=params,
            concurrency=1 if detailed else PAGE_CONCURRENCY,
            resource_key=plan.key,
        )
        stream: AsyncGenerator[tuple[Page, list[DetailResult] | None], None]
        if detailed:
            rate = definition.sync.sync_configuration.rate_limit_per_second
            fan_out = FanOut(rate, lambda: client.latency, cap=max_in_flight)
            stream = with_details(listing, client, resource, fan_out=fan_out, resource_key=plan.key, settle=settle)
        else:
            stream = without_details(listing)
        try:
            async for page, details in stream:
                fetched_at = self.clock.now()
                report.pages += 1
                report.fetched += len(page.records)
                total = page.total if page.total is not None else total
                if details is None:
                    settled = [settle(record) for record in page.records]
                else:
                    settled, failed = await self._kept(details, plan, installation, run_id, report)
                    errors_seen |= failed
                for mapped, cursor, source in settled:
                    if source is not None:
                        await self._reject(installation, plan.key, run_id, source, mapped)
                        report.rejected += 1
                        errors_seen = True
                        continue
                    buffer.append(record_write(mapped, fetched_at))
                    if cursor_field is not None:
                        since = _later(since, cursor)
                if len(buffer) >= batch_size:
                    checkpoint = {**page.state, "began": began, **({"since": since} if since else {})}
                    await writer.write(buffer, batch_size, checkpoint)
                    buffer = []
                self._count(client, report)
                if progress.due():  # the figures it writes count every batch so far, committed
                    await writer.wait()
                await progress(report, total)  # also the run's heartbeat
                # Let go of the page before waiting for the next: with details that wait is a page
                # of detail calls (25 s at 4 requests/s), and what the page holds is in the buffer
                # already, mapped (hundreds of runs in a process each held a page).
                del page, details, settled
            # The rest, with the "done" checkpoint: the next run starts over (from `since` if incremental).
            done = {"done": True, **({"since": since} if since else {})}
            await writer.write(buffer, batch_size, done, last=True)
        finally:
            await stream.aclose()  # stop the detail fetches still out
            await writer.wait()  # also when the walk failed: what is in flight still commits
            self._count(client, report)  # a failed resource too: its requests, retries and 429s tell why
            await client.close()  # the guarded session it may have opened (D31); the run's own stays
        if resource.detect_deletes and not errors_seen and not params:
            # Only a full, clean listing proves absence (D23).
            report.deleted = await asyncio.to_thread(
                self.store.soft_delete_unseen, installation.id, plan.content_type, since=began, run_id=run_id
            )
        self._count(client, report)

    async def _kept(
        self,
        details: list[DetailResult],
        plan: ResourcePlan,
        installation: Installation,
        run_id: str,
        report: ResourceReport,
    ) -> tuple[list[Settled], bool]:
        """Return a page's records settled with their details; dead-letter those whose details failed (D9)."""
        kept: list[Settled] = []
        failed = False
        for result in details:
            if result.error is not None:
                await self._call(
                    self.store.add_dead_letter,
                    installation.id,
                    kind="record",
                    source=plan.key,
                    payload=result.record,
                    reason=str(result.error),
                    run_id=run_id,
                )
                report.rejected += 1
                failed = True
                continue
            if result.warning:
                report.warnings += 1
            kept.append(result.settled)
        return kept, failed

    async def _reject(
        self, installation: Installation, resource: str, run_id: str, record: Any, mapped: MappedRecord
    ) -> None:
        await self._call(
            self.store.add_dead_letter,
            installation.id,
            kind="record",
            source=resource,
            payload=record,
            reason=mapped.reason(),
            run_id=run_id,
        )

    @staticmethod
    def _count(client: ProviderClient, report: ResourceReport) -> None:
        report.requests, report.retries, report.throttled = client.requests, client.retries, client.throttled
        report.statuses, report.rate_wait_seconds = dict(client.statuses), client.waited
        report.paced_per_second = round(client.limiter.paced, 3)


def _paging_state(state: dict[str, Any]) -> dict[str, Any] | None:
    paging = {k: v for k, v in state.items() if k not in ("began", "since", "done")}
    return paging or None


def _later(current: Any, candidate: Any) -> Any:
    if candidate is None or isinstance(candidate, dict | list):
        return current
    text = str(candidate)
    return text if current is None or text > str(current) else current
