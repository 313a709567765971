"""The processor: drain the inbox per installation, in arrival order (D25, D27, D28).

For each pending row: customer extraction, then the handler, then (if the handler wrote, or
there is no handler) the trigger event into the outbox, and the row marked done, all in one
transaction. Rows are claimed before they are processed, which counts the attempt (a batch's
transaction claims the installation's next batch, so a claim needs no transaction of its own); a failure
puts the row back with a backoff on the injected clock and holds the installation's later rows
until it succeeds or is dead-lettered after ``max_attempts``. A row whose mapping is rejected
(D19) or whose body is not JSON can never succeed: it is dead-lettered at once. After a restart,
rows left in 'processing' are retried; that is safe because writes are upserts and the outbox
is keyed by inbox row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from miniapp_sync import exactjson
from miniapp_sync.clock import Clock
from miniapp_sync.errors import MiniAppSyncError
from miniapp_sync.mapping.phones import UNKNOWN_REGION, default_country, with_normal_phone
from miniapp_sync.runtime import MiniApp, Runtime
from miniapp_sync.store import Inbox, InboxRow, Outbox, Store
from miniapp_sync.store.history import History
from miniapp_sync.store.rejections import Rejections
from miniapp_sync.webhooks.concurrency import Call, caller
from miniapp_sync.webhooks.metrics import WebhookMetrics
from miniapp_sync.webhooks.operations import Prepared, apply_rows
from miniapp_sync.webhooks.providers import provider_of
from miniapp_sync.webhooks.settings import WebhookSettings

log = logging.getLogger("miniapp_sync.webhooks")
YIELD_STEP = 0.005  # seconds between looks at the receiver's backlog while stepping aside
YIELD_TURNS = 3  # loop turns from a socket's data to its delivery in the group commit
Claimed = tuple[list[InboxRow], float | None]  # claimed rows, or when the head comes due (Inbox.claim_due)


def purge(store: Store, before: float) -> tuple[int, int, int]:
    """Forget finished inbox rows and delivered trigger events older than ``before``, and record changes
    past the history's own retention (D39); return how many of each.

    The rejection trail (D24a) goes with the inbox rows: metadata of refused deliveries, kept as long.
    """
    Rejections(store).purge(before)
    return Inbox(store).purge(before), Outbox(store).purge(before), History(store).purge()


def describe(exc: BaseException) -> str:
    """Return a failure as one line: our errors say enough; others get their type."""
    return str(exc) if isinstance(exc, MiniAppSyncError) else f"{type(exc).__name__}: {exc}"


class Processor:
    """Process inbox rows into records and trigger events, with retries and dead letters."""

    def __init__(
        self,
        runtime: Runtime,
        inbox: Inbox | None = None,
        *,
        settings: WebhookSettings | None = None,
        clock: Clock | None = None,
        metrics: WebhookMetrics | None = None,
        busy: Callable[[], bool] | None = None,
        call: Call | None = None,
    ) -> None:
        self.runtime = runtime
        self.inbox = inbox or Inbox(runtime.store)
        self.settings = settings or WebhookSettings()
        self.clock = clock or runtime.clock
        self.metrics = metrics
        self.busy = busy  # whether the receiver is crowded, when it says
        self._call = call or caller(runtime.backend.inline_store_calls)
        self._locks: dict[str, asyncio.Lock] = {}
        self._owners: dict[str, tuple[str, str]] = {}
        self._trigger_events: dict[str, tuple[MiniApp, frozenset[str]]] = {}

    async def settle(self) -> None:
        """Process until nothing is pending, waiting out retries on the clock (instantly, with a FakeClock)."""
        while (next_due := await self.drain()) is not None:
            await self.clock.sleep(max(0.0, next_due - self.clock.now()))

    async def drain(self) -> float | None:
        """Process every row that is due now; return when the next waiting row comes due (None: none waits)."""
        heads = await self._call(self.inbox.pending_heads)
        now = self.clock.now()
        served = [(iid, ns, at) for iid, ns, at in heads if ns in self.runtime.apps]
        later = [at for _, _, at in served if at is not None and at > now]
        slots = asyncio.Semaphore(self.settings.workers)

        async def one(installation_id: str, ns: str) -> float | None:
            async with slots:
                return await self._drain_installation(installation_id, self.runtime.apps[ns])

        results = await asyncio.gather(*(one(iid, ns) for iid, ns, at in served if at is None or at <= now))
        return min([*later, *(r for r in results if r is not None)], default=None)

    async def drain_installation(self, ns: str, installation_id: str) -> float | None:
        """Process one installation's due rows in order; return when the next waiting row comes due.

        The body of a drain job (D33). The job's lock makes it the installation's only processor
        anywhere, so rows of the installation still marked 'processing' belong to a drain that
        died (a worker SIGKILLed mid-batch): they are put back first, and processed again.
        """
        app = self.runtime.apps[ns]
        recovered = await self._call(self.inbox.recover, installation_id)
        if recovered:
            log.warning("retrying %d %s webhook deliveries of a drain that stopped", recovered, ns)
        return await self._drain_installation(installation_id, app)

    async def _drain_installation(self, installation_id: str, app: MiniApp) -> float | None:
        async with self._locks.setdefault(installation_id, asyncio.Lock()):
            claimed: Claimed | None = None
            try:
                while True:
                    if claimed is None:
                        claimed = await self._call(self.inbox.claim_due, installation_id, self.settings.batch)
                    due, waiting = claimed
                    if not due:
                        return waiting
                    claimed = None  # attempted from here on
                    held_until, claimed = await self._process(app, due)
                    if held_until is not None:
                        return held_until
                    await self._step_aside()
                    if claimed is not None and 0 < len(claimed[0]) < self.settings.batch and self.settings.gather > 0:
                        # Caught up: what the batch's transaction claimed is what arrived meanwhile. Waiting
                        # a moment before processing it lets the next transaction claim more, so a steady
                        # rate costs fewer transactions (each a commit, the writer lock taken once more).
                        await self.clock.sleep(self.settings.gather)
            except asyncio.CancelledError:
                if claimed is not None and claimed[0]:
                    await self._release_unattempted(claimed[0])
                raise

    async def _release_unattempted(self, rows: list[InboxRow]) -> None:
        """Put back rows claimed ahead (by the last batch's transaction) that a stop kept from being attempted."""
        # A stop (Ctrl-C, a drain job cancelled) between the claim and the attempt would otherwise
        # cost each row an attempt: after a few restarts, rows never tried would be dead-lettered.
        try:
            await self._call(self.inbox.release, [row.id for row in rows])
        except Exception as exc:  # they stay claimed; the next start puts them back, attempt counted
            log.warning("could not put back %d claimed webhook deliveries: %s", len(rows), describe(exc))

    async def _step_aside(self) -> None:
        """Let the receiver go first: acknowledging in time matters more than processing now (senders time out)."""
        # Store calls may run inline: give the loop a few turns, so that requests that arrived during
        # the batch are read and handed to the group commit, where they count.
        for _ in range(YIELD_TURNS):
            await asyncio.sleep(0)
        held = 0.0
        while self.busy is not None and self.busy():
            if held >= self.settings.yield_wait:
                return  # a long burst: process a batch anyway, so the inbox still moves
            await self.clock.sleep(YIELD_STEP)
            held += YIELD_STEP

    async def _process(self, app: MiniApp, rows: list[InboxRow]) -> tuple[float | None, Claimed | None]:
        """Process claimed rows in one transaction (one by one if it fails); return a retry time that holds the rest,
        and the installation's next batch when the transaction claimed it too (None: claim it yourself).

        The next batch is claimed in the batch's own transaction: a claim of its own was a second
        write transaction per batch (the writer lock taken, a commit), which the receiver's group
        commit waits for. Its attempts are counted, and durable, before it is mapped, as before.
        """
        installation_id = rows[0].installation_id or ""
        tenant, country = await self._owner(app, installation_id)
        prepared = [self._prepare(app, r, country) for r in rows]
        try:
            claimed = await self._call(self._commit, tenant, prepared, (installation_id, self.settings.batch))
        except Exception:  # find the row that spoils the transaction: the ones before it still commit
            for index, item in enumerate(prepared):
                try:
                    await self._call(self._commit, tenant, [item])
                except Exception as exc:
                    rest = [p.row.id for p in prepared[index + 1 :]]
                    if rest:
                        await self._call(self.inbox.release, rest)
                    self._done(app.ns, prepared[:index])
                    return await self._failed(item.row, describe(exc)), None
            claimed = None
        self._done(app.ns, prepared)
        return None, claimed

    def _prepare(self, app: MiniApp, row: InboxRow, country: str, *, replaying: bool = False) -> Prepared:
        """Map a row's body: the customer and the handler's record (pure, so done before the transaction)."""
        try:
            return self._map(app, row, country, replaying)
        except Exception as exc:  # a bug in a mapping function must not leave the row claimed forever
            return Prepared(row, problem=f"mapping failed: {describe(exc)}")

    def _map(self, app: MiniApp, row: InboxRow, country: str, replaying: bool) -> Prepared:
        event = row.event or ""
        if row.attempts > self.settings.max_attempts and not replaying:  # it crashed the process every time
            last = row.error or "the process stopped while processing it"
            return Prepared(row, problem=f"gave up after {row.attempts - 1} attempts; last: {last}")
        try:
            body = exactjson.loads(row.body)
        except exactjson.JSONDecodeError:
            return Prepared(row, problem="the body is not JSON, so no handler can read it")
        handler = app.plan.handlers.get(event)
        customer = app.plan.customer.extract(event, body) if app.plan.customer is not None else None
        customer = with_normal_phone(customer, country)  # matched and stored in E.164 (D28)
        mapped = handler.map(body) if handler is not None else None
        if mapped is not None and mapped.rejected:
            return Prepared(row, problem=f"handler {event!r} rejected the record: {mapped.reason()}")
        return Prepared(row, handler, mapped, customer, event in self._triggers(app))

    def _triggers(self, app: MiniApp) -> frozenset[str]:
        cached = self._trigger_events.get(app.ns)
        if cached is None or cached[0] is not app:
            cached = self._trigger_events[app.ns] = (app, frozenset(app.definition.trigger_events()))
        return cached[1]

    def _commit(self, tenant: str, prepared: list[Prepared], claim: tuple[str, int] | None = None) -> Claimed | None:
        """Apply prepared rows in one transaction; with ``claim`` (installation, limit), claim its next rows in it."""
        with self.inbox.transaction() as tx:
            apply_rows(tx, tenant, prepared)
            return tx.claim_due(*claim) if claim is not None else None

    def _done(self, ns: str, prepared: list[Prepared]) -> None:
        failed = sum(1 for p in prepared if p.problem is not None)
        for item in prepared:
            if item.problem is not None:
                log.warning(
                    "dead-lettered %s delivery %d: %s", ns, item.row.id, item.problem,
                    extra={"delivery_id": item.row.id, "installation": item.row.installation_id},
                )  # fmt: skip
        if self.metrics is not None:
            now = self.clock.now()
            lags = tuple(now - p.row.received_at for p in prepared if p.problem is None)
            self.metrics.processed(ns, "done", len(prepared) - failed, lags)
            if failed:
                self.metrics.processed(ns, "dead_lettered", failed)

    async def _failed(self, row: InboxRow, reason: str) -> float | None:
        """Retry a row later, or dead-letter it once it has used its attempts; return the retry time."""
        if row.attempts >= self.settings.max_attempts:
            text = f"failed {row.attempts} times; last: {reason}"
            await self._call(self._dead_letter, row, text)
            log.warning(
                "dead-lettered %s delivery %d: %s", row.ns, row.id, text,
                extra={"delivery_id": row.id, "installation": row.installation_id},
            )  # fmt: skip
            if self.metrics is not None:
                self.metrics.processed(row.ns, "dead_lettered")
            return None
        when = self.clock.now() + self.settings.delay(row.attempts)
        await self._call(self.inbox.retry_at, row.id, when, reason)
        log.warning(
            "%s delivery %d failed (attempt %d), retrying later: %s", row.ns, row.id, row.attempts, reason,
            extra={"delivery_id": row.id, "installation": row.installation_id},
        )  # fmt: skip
        if self.metrics is not None:
            self.metrics.processed(row.ns, "retried")
        return when

    def _dead_letter(self, row: InboxRow, reason: str) -> None:
        with self.inbox.transaction() as tx:
            tx.fail(row, reason)

    def _settle_failed(self, row: InboxRow, reason: str) -> None:
        with self.inbox.transaction() as tx:
            tx.fail(row, reason, dead_letter=False)

    async def replay(self, app: MiniApp, row: InboxRow) -> str | None:
        """Process one claimed row once, as a replay: return why it failed (it stays failed), or None."""
        tenant, country = await self._owner(app, row.installation_id or "")
        item = self._prepare(app, row, country, replaying=True)
        reason = item.problem
        if reason is None:
            try:
                await self._call(self._commit, tenant, [item])
            except Exception as exc:
                reason = describe(exc)
        if reason is not None:
            await self._call(self._settle_failed, row, reason)
        return reason  # the trigger events it emitted go out with the next delivery job (the sweep finds them)

    async def _owner(self, app: MiniApp, installation_id: str) -> tuple[str, str]:
        """Return an installation's tenant and default phone country (cached: neither changes while it lives)."""
        owner = self._owners.get(installation_id)
        if owner is None:
            found = await self._call(self.runtime.store.get_installation, installation_id)
            if found is None:
                return "", UNKNOWN_REGION
            country = default_country(found.metadata, found.user_input, provider_of(app.definition))
            owner = self._owners[installation_id] = (found.tenant, country)
        return owner
