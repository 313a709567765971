"""The Sync guide's submission checklist, run against a sandbox store with evidence for each item.

- List + detail endpoints tested with sandbox credentials
- ``apiMapping`` covers the required fields of each ``contentType`` (statically and on real records)
- Webhook handler events match ``triggers[].event`` strings exactly
- Pagination ``responseMapping`` matches the provider's JSON shape
- Sample payloads included (one per handler event, each mapping to a valid record)
- and, not in the guide's list: every extension beyond the documented vocabulary in use (D41)
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
import orjson

from miniapp_sync.clock import Clock, SystemClock
from miniapp_sync.definition import LoadedDefinition
from miniapp_sync.definition.compatibility import compatibility
from miniapp_sync.definition.model import Definition, Resource
from miniapp_sync.errors import MiniAppSyncError, preview
from miniapp_sync.installations.calls import call
from miniapp_sync.installations.provider import provider_client, secret_values
from miniapp_sync.mapping.plan import MappingPlan
from miniapp_sync.network import Egress, Rewrites
from miniapp_sync.provider.client import ProviderClient
from miniapp_sync.provider.pagination import Page, fetch_details, pages
from miniapp_sync.provider.ratelimit import RateLimiter
from miniapp_sync.provider.retry import RetryPolicy
from miniapp_sync.submission.samples import read_sample
from miniapp_sync.templating import Context
from miniapp_sync.webhooks.identify import Delivery, extract_event, transaction_id

Status = Literal["pass", "warn", "fail"]
ENDPOINTS = "List + detail endpoints tested with sandbox credentials"
COVERAGE = "apiMapping covers required fields for each contentType"
EVENTS = "Webhook handler events match triggers[].event exactly"
SHAPE = "Pagination responseMapping matches the provider's JSON shape"
SAMPLES = "Sample payloads included"
EXTENSIONS = "Extensions beyond the documented vocabulary (D41)"


@dataclass
class Item:
    """One checklist item: its verdict, and the evidence that led to it."""

    name: str
    status: Status = "pass"
    evidence: list[str] = field(default_factory=list)

    def note(self, status: Status, line: str) -> None:
        """Add evidence; the item's status is the worst it has seen."""
        self.evidence.append(line)
        order = ("pass", "warn", "fail")
        if order.index(status) > order.index(self.status):
            self.status = status

    def as_dict(self) -> dict[str, Any]:
        """Return the item as JSON-ready data."""
        return {"item": self.name, "status": self.status, "evidence": self.evidence}


@dataclass
class Report:
    """The whole checklist for one definition."""

    ns: str
    version: str
    items: list[Item]

    @property
    def passed(self) -> bool:
        """Return True when no item failed (warnings allowed)."""
        return all(item.status != "fail" for item in self.items)

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "ns": self.ns,
            "version": self.version,
            "passed": self.passed,
            "items": [i.as_dict() for i in self.items],
        }

    def markdown(self) -> str:
        """Render the report for sharing with reviewers."""
        mark = {"pass": "✅ pass", "warn": "⚠️ warn", "fail": "❌ fail"}
        lines = [f"# Submission checklist — {self.ns} {self.version}", "", "| Item | Result |", "|---|---|"]
        lines += [f"| {item.name} | {mark[item.status]} |" for item in self.items]
        for item in self.items:
            lines += ["", f"## {item.name}", ""] + [f"- {line}" for line in item.evidence or ["(nothing to report)"]]
        return "\n".join(lines) + "\n"


@dataclass
class SandboxAccess:
    """How to reach the sandbox store: credentials, metadata, operator config, URL rewrites."""

    credentials: Mapping[str, Any]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    user_input: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    rewrites: Rewrites = field(default_factory=Rewrites)
    allow_private_network: bool = False

    @property
    def egress(self) -> Egress:
        """Return the request policy: the rewrites, and the private-network guard on tenant URLs (D31)."""
        return Egress(self.rewrites, allow_private_network=self.allow_private_network)

    def secrets(self, definition: Definition) -> list[str]:
        """Return the values the report must never show, as an installation's (D30)."""
        return secret_values(definition, self.credentials, self.config)


def static_items(loaded: LoadedDefinition) -> tuple[Item, Item]:
    """Return the items lint decides: handler/trigger pairing and static required-field coverage."""
    events, coverage = Item(EVENTS), Item(COVERAGE)
    for finding in loaded.findings:
        if finding.code == "handler-without-trigger":
            events.note("fail", f"{finding.render()}")
        elif finding.code == "triggers-only":
            events.note("pass", f"{finding.render()}")
        elif finding.code == "required-field":
            coverage.note("fail", f"static: {finding.render()}")
    definition = loaded.definition
    if definition is not None and events.status == "pass":
        paired = sorted(set(definition.handlers()) & definition.trigger_events())
        events.evidence.insert(0, f"{len(paired)} handler event(s) paired with triggers: {', '.join(paired) or '—'}")
    return events, coverage


async def run_checklist(
    loaded: LoadedDefinition,
    plan: MappingPlan,
    sandbox: SandboxAccess,
    samples: Path | None,
    *,
    clock: Clock | None = None,
) -> Report:
    """Run every checklist item; network problems become failed items, never exceptions."""
    clock = clock or SystemClock()
    definition = loaded.definition
    assert definition is not None  # callers check validity first
    events, coverage = static_items(loaded)
    endpoints, shape = Item(ENDPOINTS), Item(SHAPE)
    async with aiohttp.ClientSession() as session:
        context = await _context(definition, sandbox, session, endpoints)
        if context is not None and definition.sync is not None:
            for key, resource in definition.sync.resources.items():
                if resource.enabled:
                    await _resource(
                        definition, plan, key, resource, context, sandbox, session, clock, endpoints, shape, coverage
                    )
    if definition.sync is None or not definition.sync.resources:
        endpoints.note("warn", "no sync.resources: nothing to fetch")
    return Report(
        definition.ns or "",
        definition.version or "",
        [endpoints, coverage, events, shape, _samples(definition, plan, samples), extensions_item(loaded)],
    )


def extensions_item(loaded: LoadedDefinition) -> Item:
    """Return the item that lists each extension in use and each compute function (a warning, never a failure)."""
    item = Item(EXTENSIONS)
    lines = compatibility(loaded.document).lines()
    for line in lines:
        item.note("warn", line)
    if not lines:
        item.note("pass", "only the documented vocabulary is used")
    return item


async def _context(
    definition: Definition, sandbox: SandboxAccess, session: aiohttp.ClientSession, item: Item
) -> Context | None:
    config = {**(definition.auth.config if definition.auth else {}), **sandbox.config}
    context = Context(dict(sandbox.credentials), dict(sandbox.metadata), dict(sandbox.user_input), config)
    details = definition.auth.user_details if definition.auth else None
    if details is None:
        return context
    try:  # userDetails fills the metadata that [[storeId]]-style headers need
        result = await call(
            session,
            details,
            context,
            where="auth.userDetails",
            egress=sandbox.egress,
            secrets=sandbox.secrets(definition),
        )
    except MiniAppSyncError as exc:
        item.note("fail", f"auth.userDetails: {exc}")
        return None
    item.note("pass", f"auth.userDetails answered; metadata keys: {', '.join(sorted(result.persisted)) or '—'}")
    return context.with_values(metadata={**sandbox.metadata, **result.persisted})


async def _resource(
    definition: Definition,
    plan: MappingPlan,
    key: str,
    resource: Resource,
    context: Context,
    sandbox: SandboxAccess,
    session: aiohttp.ClientSession,
    clock: Clock,
    endpoints: Item,
    shape: Item,
    coverage: Item,
) -> None:
    assert definition.sync is not None
    client: ProviderClient | None = None
    try:
        client = await provider_client(
            definition,
            context,
            egress=sandbox.egress,
            session=session,
            clock=clock,
            limiter=RateLimiter(definition.sync.sync_configuration.rate_limit_per_second, clock=clock),
            retry=RetryPolicy(max_attempts=2, random=random.Random(0)),
            secrets=sandbox.secrets(definition),
        )
        started = clock.monotonic()
        fetched: list[Page] = []
        walker = pages(client, resource, resource_key=key)
        async with contextlib.aclosing(walker) as walk:
            async for page in walk:
                fetched.append(page)
                if len(fetched) == 2:
                    break
        elapsed = (clock.monotonic() - started) * 1000 / max(1, len(fetched))
    except MiniAppSyncError as exc:
        endpoints.note("fail", f"{key}: list {resource.endpoints.list.url} failed: {exc}")
        shape.note("fail", f"{key}: {exc}")
        if client is not None:
            await client.close()
        return
    first = fetched[0].records if fetched else []
    endpoints.note(
        "pass" if first else "warn",
        f"{key}: list {resource.endpoints.list.url} answered, {len(first)} record(s) on page 1, ~{elapsed:.0f} ms/page"
        + ("" if first else " — an empty sandbox proves little: add data"),
    )
    shape.note("pass", f"{key}: dataProperty {resource.response_mapping.data_property!r} resolves to a list")
    _totals(key, resource, fetched, shape)
    records = [record for page in fetched for record in page.records]
    if records and resource.expand_details and resource.endpoints.details is not None:
        (detail,) = await fetch_details(client, resource, records[:1], resource_key=key)
        if detail.status == "failed":
            endpoints.note("fail", f"{key}: details {resource.endpoints.details.url} failed: {detail.error}")
        elif detail.status == "not_found":
            endpoints.note("warn", f"{key}: details of the first record answered 404")
        else:
            added = sorted(set(detail.record) - set(records[0]))
            endpoints.note("pass", f"{key}: details {resource.endpoints.details.url} answered and unwrapped")
            shape.note("pass", f"{key}: detail unwrapped; it adds {len(added)} field(s) to the list record")
            records[0] = detail.record
    await client.close()  # the guarded session it may have opened (D31)
    _coverage(key, plan, records, coverage)


def _totals(key: str, resource: Resource, fetched: list[Page], shape: Item) -> None:
    total = fetched[0].total if fetched else None
    if resource.response_mapping.total_property is None:
        shape.note("warn", f"{key}: no totalProperty: paging stops on a short or empty page")
        return
    if total is None:
        shape.note("fail", f"{key}: totalProperty {resource.response_mapping.total_property!r} found no number")
        return
    size = len(fetched[0].records)
    if len(fetched) < 2:
        consistent = total <= size
        detail = f"total {total} fits on page 1 ({size} records)"
    else:
        expected = min(size, total - size)
        consistent = len(fetched[1].records) == expected
        detail = f"total {total}: page 2 has {len(fetched[1].records)} record(s), expected {expected}"
    shape.note("pass" if consistent else "fail", f"{key}: totalProperty is a number consistent with paging — {detail}")


def _coverage(key: str, plan: MappingPlan, records: list[Any], item: Item) -> None:
    mapper = plan.resources[key].mapper
    for index, record in enumerate(records):
        mapped = mapper(record)
        if mapped.rejected:
            item.note("fail", f"{key}: fetched record #{index} (id {preview(record.get('id'))}) — {mapped.reason()}")
            return
    if records:
        item.note("pass", f"{key}: all {len(records)} fetched record(s) map with every required field")


def _samples(definition: Definition, plan: MappingPlan, folder: Path | None) -> Item:
    item = Item(SAMPLES)
    handlers = sorted(definition.handlers())
    if not handlers:
        item.note("pass", "no webhook handlers: no samples needed")
        return item
    if folder is None:
        item.note("fail", f"no --samples folder given: add <event>.json for {', '.join(handlers)}")
        return item
    for event in handlers:
        sample = read_sample(folder, event)
        if sample.problem is not None:
            item.note("fail", f"{event}: {sample.problem}")
            continue
        if sample.data is None:
            path = folder / sample.name
            item.note("fail", f"{event}: no sample — add {path} (record one with serve --record-samples)")
            continue
        raw = sample.data
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            item.note("fail", f"{event}: {sample.name} is not JSON ({exc})")
            continue
        delivery = Delivery(body=body, raw=raw)
        extracted = extract_event(definition.webhook, delivery)
        if extracted != event:
            item.note("fail", f"{event}: eventExtraction reads {extracted!r} from {sample.name}, not {event!r}")
            continue
        if (
            definition.webhook
            and definition.webhook.transaction_id
            and not transaction_id(definition.webhook, event, delivery)
        ):
            item.note("fail", f"{event}: the transaction id of {sample.name} is empty")
            continue
        mapped = plan.handlers[event].map(body)
        if mapped.rejected:
            item.note("fail", f"{event}: {sample.name} does not map to a valid record — {mapped.reason()}")
            continue
        item.note("pass", f"{event}: {sample.name} → {plan.handlers[event].content_type} {mapped.code!r}")
    return item
