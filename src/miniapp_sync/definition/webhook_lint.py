"""Webhook findings of ``validate`` that need the runtime's rules: tenant resolution and de-duplication.

Kept apart from ``lint`` (which checks the document's vocabulary): these say what the receiver
will do with a definition as written (D24, D26), so a developer who followed the guide learns it
before a delivery is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from miniapp_sync.definition.model import Definition, Handler
from miniapp_sync.definition.rules import Rule, RuleError, parse_rule
from miniapp_sync.definition.webhook_model import TransactionPaths
from miniapp_sync.errors import Finding
from miniapp_sync.webhooks.providers import well_known_place

Locate = Callable[[tuple[str | int, ...]], str | None]


def webhook_findings(definition: Definition, locate: Locate) -> list[Finding]:
    """Return the tenant-resolution note or warning, and a warning per update handler whose key is only the id."""
    webhook = definition.webhook
    if webhook is None or not (definition.handlers() or definition.triggers):
        return []
    found: list[Finding] = []

    def add(severity: Any, loc: tuple[str | int, ...], message: str, **detail: str) -> None:
        path = ".".join(str(part) for part in loc)
        found.append(Finding(severity, path, message, code="webhook", location=locate(loc), **detail))

    ns = definition.ns or "<ns>"
    if webhook.tenant_extraction is None:
        place = well_known_place(definition)
        if place is not None:
            add(
                "info",
                ("webhook",),
                f"on the shared URL /miniapps/{ns}/webhooks the tenant is found from {place.describe()} "
                "(no tenantExtraction: D24 rule 1), else the one installation whose own secret verifies, "
                "else the only installation",
            )
        else:
            add(
                "warning",
                ("webhook", "tenantExtraction"),
                f"nothing in a delivery names its tenant: on the shared URL /miniapps/{ns}/webhooks a delivery "
                "is matched only by a per-installation secret (credentials) or when there is one installation",
                hint=f"add webhook.tenantExtraction {{ source, path, matchKey }}, or give each tenant the URL "
                f"/miniapps/{ns}/webhooks/<installation id>",
            )
    config = webhook.transaction_id
    if config is None:
        return found
    for event, handler in definition.handlers().items():
        # A creation happens once per record, whatever the operation says (shape B upserts every
        # event): only events that can recur for one record need more than its id.
        if handler.operation == "create" or "creat" in event.lower():
            continue
        chosen: TransactionPaths = config.overrides.get(event, config)
        ids = _record_id_paths(definition, handler)
        paths = {_plain(p) for p in chosen.all_paths}
        if paths and ids and paths <= ids:
            where: tuple[str | int, ...] = ("webhook", "transactionId")
            if event in config.overrides:
                where += ("overrides", event)
            shown = ", ".join(sorted(chosen.all_paths))
            add(
                "warning",
                where,
                f"the transaction id of {event!r} ({handler.operation}) is only the record's id ({shown}): two "
                "updates of one record share it; each is still processed (another body: counted reused_id), "
                "but an update that repeats an earlier body within 7 days is taken for a resend",
                hint=f"add an updated-at or status path, e.g. overrides: {{ '{event}': {{ paths: "
                f"['{next(iter(chosen.all_paths))}', '$.data.updated_at.date'] }} }}",
            )
    return found


def _plain(path: str) -> str:
    """Return a path without its JSONPath root, so '$.data.id' and 'data.id' compare equal."""
    return path.removeprefix("$").removeprefix(".")


def _record_id_paths(definition: Definition, handler: Handler) -> set[str]:
    """Return the body paths a handler reads its record's ``code`` from."""
    if handler.mapping is not None:
        raw, prefix = handler.mapping.get("code"), ""
    else:
        resources = definition.sync.resources if definition.sync is not None else {}
        resource = resources.get(handler.resource or "")
        raw = resource.api_mapping.get("code") if resource is not None else None
        prefix = _plain(handler.data_path)
    if raw is None:
        return set()
    try:
        rule = raw if isinstance(raw, Rule) else parse_rule(raw)
    except RuleError:
        return set()  # lint reports the rule itself
    return {".".join(part for part in (prefix, _plain(path)) if part) for path in rule.paths}
