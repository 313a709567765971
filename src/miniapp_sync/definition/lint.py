"""Validation and lint of a MiniApp document: every problem at once, each with its path (D2, D3).

Structural problems come from the typed model; the checks here are the static part of the
submission checklist and the cross-references the model cannot see. They read the raw
document defensively, so they still run (and report) when the structure is broken elsewhere.

This module runs them all (:func:`lint`) and holds the document-level ones (identity,
triggers, schedule, secrets); mappings, placeholders and compatibility (D41) have their own
modules beside it.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

from miniapp_sync.definition import lint_mappings
from miniapp_sync.definition.compatibility import Profile, lint_compatibility
from miniapp_sync.definition.event_names import lint_event_names
from miniapp_sync.definition.findings import (
    Findings,
    Loc,
    Locate,
    Vocabulary,
    dotted,
    get,
    suggest,
    sync_only,
)
from miniapp_sync.definition.model import Definition
from miniapp_sync.definition.placeholders import lint_placeholders
from miniapp_sync.definition.webhook_lint import webhook_findings
from miniapp_sync.errors import Finding, preview

__all__ = ["SECRET_NAME", "Vocabulary", "lint"]

REQUIRED_IDENTITY = (
    *("ns", "name", "type", "title", "label", "description", "shortDescription"),
    *("status", "version", "category", "icon", "logo", "docsUrl", "auth"),
)
CATEGORIES = frozenset(
    {"ecommerce", "productivity", "communication", "marketing", "developer"}
    | {"payment", "social", "storage", "analytics", "crm"}
)
NS_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_LEGACY = frozenset({("webhook", "ecommerce")})
SECRET_NAME = re.compile(r"secret|token|password|passwd|api_?key|private", re.IGNORECASE)
PUBLIC_OAUTH_KEYS = frozenset({"client_id", "client_secret"})


# --- structure (pydantic) -----------------------------------------------------------------


def _real_loc(document: Any, loc: tuple[Any, ...]) -> Loc:
    """Drop pydantic's union/validator tags from a location, keeping only real keys."""
    node, out = document, []
    for index, part in enumerate(loc):
        in_dict = isinstance(node, dict) and part in node
        if in_dict or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            node = node[part]
            out.append(part)
        elif index == len(loc) - 1 and isinstance(part, str) and isinstance(node, dict):
            out.append(part)  # a missing key: not in the document, but it is where the problem is
    return tuple(out)


def _structure(document: dict[str, Any], findings: Findings) -> Definition | None:
    try:
        return Definition.model_validate(document)
    except ValidationError as exc:
        seen: set[str] = set()
        for error in exc.errors(include_url=False):
            loc = _real_loc(document, error["loc"])
            kind, ctx = error["type"], error.get("ctx") or {}
            key = dotted(loc)
            if key in seen and kind not in ("missing", "mapping_rule"):
                continue  # a union reports once per member; the first says enough
            seen.add(key)
            if kind == "missing":
                findings.error(loc, "required field is missing", code="missing")
            elif kind == "mapping_rule":
                where = (*loc, ctx["where"]) if ctx.get("where") else loc
                findings.error(
                    where,
                    ctx["reason"],
                    code="mapping-rule",
                    expected=ctx.get("expected") or None,
                    found=ctx.get("found") or None,
                    hint=ctx.get("hint") or None,
                )
            elif kind == "literal_error":
                findings.error(
                    loc,
                    "value is not one of the allowed values",
                    code="enum",
                    expected=str(ctx.get("expected")),
                    found=preview(error["input"]),
                    hint=suggest(str(error["input"]), re.findall(r"'([^']*)'", str(ctx.get("expected")))),
                )
            else:
                message = error["msg"]
                findings.error(loc, message[0].lower() + message[1:], code=kind, found=preview(error["input"]))
        return None


def _unknown_keys(model: BaseModel, loc: Loc, findings: Findings) -> None:
    """Warn about keys the model does not know (D3), with a near-miss suggestion."""
    known = {f.alias or name for name, f in type(model).model_fields.items()}
    for key in model.model_extra or {}:
        if (*loc, key) in _LEGACY:
            continue  # reported as deprecated, with where its replacement lives
        findings.warning(
            (*loc, key), f"unknown key {key!r} is kept but not used", code="unknown-key", hint=suggest(key, known)
        )
    for name, field in type(model).model_fields.items():
        _walk_unknown(getattr(model, name), (*loc, field.alias or name), findings)


def _walk_unknown(value: Any, loc: Loc, findings: Findings) -> None:
    if isinstance(value, BaseModel):
        _unknown_keys(value, loc, findings)
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk_unknown(item, (*loc, key), findings)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk_unknown(item, (*loc, index), findings)


# --- raw-document checks ------------------------------------------------------------------


def _identity(document: dict[str, Any], findings: Findings) -> None:
    if sync_only(document):
        findings.warning(
            (),
            "document holds only a 'sync' block: accepted for development, not for submission",
            code="sync-only",
            hint="add the identity fields, auth and triggers before submitting",
        )
        return
    for key in REQUIRED_IDENTITY:
        if document.get(key) in (None, ""):
            findings.error((key,), "required field is missing", code="missing")
    ns = document.get("ns")
    if isinstance(ns, str) and ns and not NS_PATTERN.match(ns):
        findings.error(
            ("ns",), "ns must be lowercase kebab-case", code="ns", expected="e.g. 'my-store'", found=preview(ns)
        )
    version = document.get("version")
    if isinstance(version, str) and not SEMVER.match(version):
        findings.error(
            ("version",), "version must be semver", code="semver", expected="'1.2.3'", found=preview(version)
        )
    category = document.get("category")
    if isinstance(category, str) and category not in CATEGORIES:
        findings.error(
            ("category",),
            "unknown category",
            code="category",
            expected=", ".join(sorted(CATEGORIES)),
            found=preview(category),
            hint=suggest(category, CATEGORIES),
        )
    short = document.get("shortDescription")
    if isinstance(short, str) and len(short) > 120:
        findings.warning(("shortDescription",), "shortDescription is longer than ~120 characters", code="length")


def _triggers(document: dict[str, Any], findings: Findings) -> None:
    triggers = document.get("triggers")
    if not isinstance(triggers, list):
        return
    ns, seen = document.get("ns"), set()
    for index, trigger in enumerate(triggers):
        if not isinstance(trigger, dict):
            continue
        event = trigger.get("event")
        if isinstance(event, str):
            if event in seen:
                findings.warning(
                    ("triggers", index, "event"), f"trigger event {event!r} is declared twice", code="duplicate"
                )
            seen.add(event)
        if isinstance(ns, str) and trigger.get("type") not in (None, f"miniapps:{ns}"):
            findings.error(
                ("triggers", index, "type"),
                "trigger type must name this MiniApp",
                code="trigger-type",
                expected=preview(f"miniapps:{ns}"),
                found=preview(trigger.get("type")),
            )


def _handlers_vs_triggers(document: dict[str, Any], findings: Findings) -> None:
    if sync_only(document):
        return  # a development fragment has no triggers to pair with yet
    handlers = get(document, "sync", "webhooks", "handlers")
    triggers = document.get("triggers")
    events = {t["event"] for t in triggers or [] if isinstance(t, dict) and isinstance(t.get("event"), str)}
    handler_events = set(handlers) if isinstance(handlers, dict) else set()
    unpaired = events - handler_events  # only a trigger no handler uses can be the near miss
    for event in sorted(handler_events - events):
        findings.error(
            ("sync", "webhooks", "handlers", event),
            f"handler event {event!r} has no trigger with exactly this event",
            code="handler-without-trigger",
            expected="a triggers[].event equal to the handler key",
            hint=suggest(event, unpaired) or f"add a trigger with event {event!r}",
        )
    if isinstance(triggers, list):
        for index, trigger in enumerate(triggers):
            event = trigger.get("event") if isinstance(trigger, dict) else None
            if isinstance(event, str) and event not in handler_events:
                findings.add(
                    "info",
                    ("triggers", index, "event"),
                    f"trigger {event!r} has no sync handler (triggers-only)",
                    code="triggers-only",
                    hint=suggest(event, handler_events),
                )


def _schedule(document: dict[str, Any], findings: Findings) -> None:
    schedule = get(document, "sync", "syncConfiguration", "schedule")
    if isinstance(schedule, str) and not _valid_cron(schedule):
        findings.error(
            ("sync", "syncConfiguration", "schedule"),
            "schedule is not a cron expression",
            code="schedule",
            expected="five cron fields, e.g. '0 */6 * * *' (every 6 hours)",
            found=preview(schedule),
        )


def _secrets(document: dict[str, Any], findings: Findings) -> None:
    """Submissions carry no secret values: user-provided ones are '' in auth.config."""
    config = get(document, "auth", "config")
    sensitive = get(document, "auth", "sensitiveKeys")
    sensitive = set(sensitive) if isinstance(sensitive, list) else set()
    for key, value in config.items() if isinstance(config, dict) else ():
        if value in ("", None) or key in PUBLIC_OAUTH_KEYS:
            continue
        if key in sensitive:
            findings.error(
                ("auth", "config", key),
                f"auth.config.{key} is a sensitive key with a value in the definition",
                code="secret-value",
                expected="'' (the value is provided at install time)",
                found="a non-empty value (not shown)",
            )
        elif SECRET_NAME.search(key):
            findings.warning(
                ("auth", "config", key),
                f"auth.config.{key} looks like a secret and has a value",
                code="secret-value",
                hint=f"leave it '' and list {key!r} in auth.sensitiveKeys",
            )


def lint(
    document: Any,
    *,
    locate: Locate | None = None,
    vocabulary: Vocabulary | None = None,
    profile: Profile = Profile.default,
) -> tuple[Definition | None, list[Finding]]:
    """Validate a raw document: return the model (None when structurally invalid) and all findings.

    ``profile`` karzoun also reports each use of a feature the hosted runtime may not have (D41).
    """
    findings = Findings(locate or (lambda loc: None))
    if not isinstance(document, dict):
        findings.error((), "a MiniApp definition must be an object", code="type", found=preview(document))
        return None, findings.items
    definition = _structure(document, findings)
    if definition is not None:
        _unknown_keys(definition, (), findings)
    _identity(document, findings)
    _triggers(document, findings)
    _handlers_vs_triggers(document, findings)
    lint_event_names(document, findings)
    lint_mappings.resources(document, findings, vocabulary)
    _schedule(document, findings)
    lint_mappings.handlers(document, findings, vocabulary)
    lint_mappings.webhook(document, findings, vocabulary)
    _secrets(document, findings)
    lint_placeholders(document, findings)
    if profile is Profile.karzoun:
        lint_compatibility(document, findings)
    if definition is not None:
        findings.items.extend(webhook_findings(definition, locate or (lambda loc: None)))
    return definition, _unique(findings.items)


def _unique(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str]] = set()
    out = []
    for finding in findings:
        if (finding.path, finding.message) not in seen:
            seen.add((finding.path, finding.message))
            out.append(finding)
    return out


def _valid_cron(expression: str) -> bool:
    from croniter import croniter  # only definitions with a schedule pay for its import

    return bool(croniter.is_valid(expression))
