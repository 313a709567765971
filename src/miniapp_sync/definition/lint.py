"""Validation and lint of a MiniApp document: every problem at once, each with its path (D2, D3).

Structural problems come from the typed model; the checks here are the static part of the
submission checklist and the cross-references the model cannot see. They read the raw
document defensively, so they still run (and report) when the structure is broken elsewhere.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from croniter import croniter
from pydantic import BaseModel, ValidationError

from miniapp_sync.definition.content_types import CATALOG, content_type
from miniapp_sync.definition.model import RECORD_TYPES, Definition
from miniapp_sync.definition.rules import Rule, RuleError, parse_rule
from miniapp_sync.errors import Finding, preview

Loc = tuple[str | int, ...]
Locate = Callable[[Loc], str | None]

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
CREDENTIAL_PLACEHOLDER = re.compile(r"\[\[\s*([^\[\]]+?)\s*\]\]")
SECRET_NAME = re.compile(r"secret|token|password|passwd|api_?key|private", re.IGNORECASE)
PUBLIC_OAUTH_KEYS = frozenset({"client_id", "client_secret"})


@dataclass(frozen=True)
class Vocabulary:
    """What the mapping layer knows, handed down so this layer imports nothing above it."""

    transforms: frozenset[str]
    functions: frozenset[str]
    check_path: Callable[[str], str | None]


def dotted(loc: Loc) -> str:
    """Render a location as ``sync.resources.products.apiMapping.code`` / ``triggers[0].event``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def suggest(word: str, choices: Any) -> str | None:
    """Return a 'did you mean' hint for a near miss, or None."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


class _Findings:
    def __init__(self, locate: Locate) -> None:
        self.items: list[Finding] = []
        self._locate = locate

    def add(self, severity: str, loc: Loc, message: str, *, code: str, **detail: str | None) -> None:
        self.items.append(
            Finding(severity, dotted(loc), message, code=code, location=self._locate(loc), **detail)  # type: ignore[arg-type]
        )

    def error(self, loc: Loc, message: str, *, code: str, **detail: str | None) -> None:
        self.add("error", loc, message, code=code, **detail)

    def warning(self, loc: Loc, message: str, *, code: str, **detail: str | None) -> None:
        self.add("warning", loc, message, code=code, **detail)


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


def _structure(document: dict[str, Any], findings: _Findings) -> Definition | None:
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


def _unknown_keys(model: BaseModel, loc: Loc, findings: _Findings) -> None:
    """Warn about keys the model does not know (D3), with a near-miss suggestion."""
    known = {f.alias or name for name, f in type(model).model_fields.items()}
    for key in model.model_extra or {}:
        findings.warning(
            (*loc, key), f"unknown key {key!r} is kept but not used", code="unknown-key", hint=suggest(key, known)
        )
    for name, field in type(model).model_fields.items():
        _walk_unknown(getattr(model, name), (*loc, field.alias or name), findings)


def _walk_unknown(value: Any, loc: Loc, findings: _Findings) -> None:
    if isinstance(value, BaseModel):
        _unknown_keys(value, loc, findings)
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk_unknown(item, (*loc, key), findings)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk_unknown(item, (*loc, index), findings)


# --- raw-document checks ------------------------------------------------------------------


def _get(node: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _dict_items(node: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield from ((k, v) for k, v in node.items() if isinstance(v, dict))


def _sync_only(document: dict[str, Any]) -> bool:
    return set(document) <= {"sync"}


def _identity(document: dict[str, Any], findings: _Findings) -> None:
    if _sync_only(document):
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


def _triggers(document: dict[str, Any], findings: _Findings) -> None:
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


def _handlers_vs_triggers(document: dict[str, Any], findings: _Findings) -> None:
    if _sync_only(document):
        return  # a development fragment has no triggers to pair with yet
    handlers = _get(document, "sync", "webhooks", "handlers")
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


def _rules(mapping: Any, loc: Loc, findings: _Findings, vocabulary: Vocabulary | None) -> dict[str, Rule]:
    """Parse a mapping's rules (errors were reported by the model) and check names and paths."""
    rules: dict[str, Rule] = {}
    if not isinstance(mapping, dict):
        return rules
    for target, raw in mapping.items():
        try:
            rule = parse_rule(raw)
        except RuleError:
            continue
        rules[target] = rule
        if vocabulary is None:
            continue
        rule_loc = (*loc, target)
        for step_index, step in enumerate(rule.transforms):
            step_loc = (*rule_loc, "transform") if len(rule.transforms) == 1 else (*rule_loc, "transform", step_index)
            if step.name not in vocabulary.transforms:
                findings.error(
                    step_loc,
                    f"unknown transform {step.name!r}",
                    code="unknown-transform",
                    expected=", ".join(sorted(vocabulary.transforms)),
                    hint=suggest(step.name, vocabulary.transforms),
                )
            if step.fn is not None and step.fn not in vocabulary.functions:
                findings.error(
                    (*rule_loc, "fn"),
                    f"unknown compute function {step.fn!r}",
                    code="unknown-function",
                    expected=", ".join(sorted(vocabulary.functions)) or "a registered function",
                    hint=suggest(step.fn, vocabulary.functions) or "register it with --functions module.py",
                )
            item_mapping = step.options.get("itemMapping")
            if step.name == "mapItems" and item_mapping is not None:
                _rules(dict(item_mapping), (*rule_loc, "itemMapping"), findings, vocabulary)
        for path_index, path in enumerate(rule.paths):
            where = (*rule_loc, "path") if rule.kind == "path" else (*rule_loc, "paths", path_index)
            _path(path, where, findings, vocabulary)
    return rules


def _path(path: Any, loc: Loc, findings: _Findings, vocabulary: Vocabulary | None) -> None:
    if vocabulary is None or not isinstance(path, str) or path in ("", "$") or path.startswith("header:"):
        return
    problem = vocabulary.check_path(path)
    if problem:
        findings.error(loc, problem, code="path-syntax", found=preview(path))


def _required(rules: dict[str, Rule], fields: tuple[str, ...], loc: Loc, findings: _Findings, what: str) -> None:
    for field in fields:
        if field not in rules:
            findings.error(
                loc,
                f"{what} does not map required field {field!r}",
                code="required-field",
                expected=", ".join(fields),
                hint=f"add {field}: '<path>'",
            )


def _schedule(document: dict[str, Any], findings: _Findings) -> None:
    schedule = _get(document, "sync", "syncConfiguration", "schedule")
    if isinstance(schedule, str) and not croniter.is_valid(schedule):
        findings.error(
            ("sync", "syncConfiguration", "schedule"),
            "schedule is not a cron expression",
            code="schedule",
            expected="five cron fields, e.g. '0 */6 * * *' (every 6 hours)",
            found=preview(schedule),
        )


def _resources(document: dict[str, Any], findings: _Findings, vocabulary: Vocabulary | None) -> None:
    for key, resource in _dict_items(_get(document, "sync", "resources")):
        loc: Loc = ("sync", "resources", key)
        type_name = resource.get("contentType")
        if isinstance(type_name, str) and type_name not in CATALOG:
            findings.warning(
                (*loc, "contentType"),
                f"content type {type_name!r} is not in the catalog: only 'code' is required",
                code="unknown-content-type",
                hint=suggest(type_name, CATALOG),
            )
        rules = _rules(resource.get("apiMapping"), (*loc, "apiMapping"), findings, vocabulary)
        if isinstance(type_name, str) and isinstance(resource.get("apiMapping"), dict):
            _required(
                rules, content_type(type_name).required, (*loc, "apiMapping"), findings, f"apiMapping ({type_name})"
            )
        pagination = resource.get("pagination")
        default, maximum = _get(pagination, "defaultLimit"), _get(pagination, "maxLimit")
        if isinstance(default, int) and isinstance(maximum, int) and default > maximum:
            findings.error(
                (*loc, "pagination", "defaultLimit"),
                "defaultLimit is above maxLimit",
                code="limit",
                expected=f"≤ {maximum}",
                found=str(default),
            )
        details_url = _get(resource, "endpoints", "details", "url")
        if resource.get("expandDetails") is True:
            if details_url is None:
                findings.error(
                    (*loc, "endpoints", "details"),
                    "expandDetails is true but there is no details endpoint",
                    code="details",
                    expected="endpoints.details: { url: '/things/{id}' }",
                )
            elif isinstance(details_url, str) and "{id}" not in details_url:
                findings.error(
                    (*loc, "endpoints", "details", "url"),
                    "details url has no {id} placeholder",
                    code="details",
                    expected="a url containing {id}",
                    found=preview(details_url),
                )
        response = resource.get("responseMapping")
        for prop in ("dataProperty", "totalProperty", "totalPagesProperty"):
            value = _get(response, prop)
            if isinstance(value, str) and not value.startswith("header:"):
                _path(value, (*loc, "responseMapping", prop), findings, vocabulary)


def _handlers(document: dict[str, Any], findings: _Findings, vocabulary: Vocabulary | None) -> None:
    resources = _get(document, "sync", "resources")
    resource_keys = set(resources) if isinstance(resources, dict) else set()
    for event, handler in _dict_items(_get(document, "sync", "webhooks", "handlers")):
        loc: Loc = ("sync", "webhooks", "handlers", event)
        resource = handler.get("resource")
        if isinstance(resource, str) and resource not in resource_keys:
            findings.error(
                (*loc, "resource"),
                f"handler names resource {resource!r}, which sync.resources does not define",
                code="unknown-resource",
                expected=", ".join(sorted(resource_keys)) or "a key of sync.resources",
                hint=suggest(resource, resource_keys),
            )
        _path(handler.get("dataPath"), (*loc, "dataPath"), findings, vocabulary)
        record_type = handler.get("recordType")
        if isinstance(record_type, str) and record_type not in RECORD_TYPES:
            findings.warning(
                (*loc, "recordType"),
                f"recordType {record_type!r} is not one of the known record types",
                code="record-type",
                expected=", ".join(RECORD_TYPES),
                hint=suggest(record_type, RECORD_TYPES),
            )
        rules = _rules(handler.get("mapping"), (*loc, "mapping"), findings, vocabulary)
        if isinstance(handler.get("mapping"), dict):
            # An update is partial by design (D22): it only needs the key that finds the record.
            type_name = RECORD_TYPES.get(record_type, "") if isinstance(record_type, str) else ""
            full = handler.get("operation") in ("create", "upsert") and type_name
            fields = content_type(type_name).required if full else ("code",)
            _required(rules, fields, (*loc, "mapping"), findings, f"handler mapping ({type_name or 'record'})")


def _webhook(document: dict[str, Any], findings: _Findings, vocabulary: Vocabulary | None) -> None:
    webhook = document.get("webhook")
    if not isinstance(webhook, dict):
        return
    extraction = webhook.get("eventExtraction")
    if _get(extraction, "source") in (None, "body"):
        _path(_get(extraction, "path"), ("webhook", "eventExtraction", "path"), findings, vocabulary)
    transaction = webhook.get("transactionId")
    if isinstance(transaction, dict):
        _path(transaction.get("path"), ("webhook", "transactionId", "path"), findings, vocabulary)
        for index, path in enumerate(transaction.get("paths") or []):
            _path(path, ("webhook", "transactionId", "paths", index), findings, vocabulary)
    customer = webhook.get("customerExtraction")
    if isinstance(customer, dict):
        _path(customer.get("basePath"), ("webhook", "customerExtraction", "basePath"), findings, vocabulary)
        rules = _rules(customer.get("mapping"), ("webhook", "customerExtraction", "mapping"), findings, vocabulary)
        if isinstance(customer.get("mapping"), dict):
            where = ("webhook", "customerExtraction", "mapping")
            _required(rules, content_type("core:customer").required, where, findings, "customerExtraction")
    secret_key = _get(webhook, "verification", "secretKey")
    sensitive = _get(document, "auth", "sensitiveKeys")
    if isinstance(secret_key, str) and isinstance(sensitive, list) and secret_key not in sensitive:
        findings.error(
            ("webhook", "verification", "secretKey"),
            f"verification secret {secret_key!r} is not listed in auth.sensitiveKeys",
            code="secret-not-sensitive",
            hint=f"add {secret_key!r} to auth.sensitiveKeys",
        )
    if _get(webhook, "verification", "type") in (None, "none") and webhook.get("eventExtraction"):
        findings.warning(
            ("webhook", "verification"),
            "webhooks are not verified: anyone who knows the URL can write records",
            code="no-verification",
            hint="use hmac-sha256 over the raw body in production",
        )


def _secrets(document: dict[str, Any], findings: _Findings) -> None:
    """Submissions carry no secret values: user-provided ones are '' in auth.config."""
    config = _get(document, "auth", "config")
    sensitive = _get(document, "auth", "sensitiveKeys")
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


def _producible_keys(document: dict[str, Any]) -> set[str]:
    """Return the keys that credentials and metadata can hold for [[key]] (D29)."""
    auth: dict[str, Any] = document["auth"] if isinstance(document.get("auth"), dict) else {}
    keys: set[str] = set()
    for bag in ("config", "form"):
        if isinstance(auth.get(bag), dict):
            keys |= set(auth[bag])
    if isinstance(auth.get("sensitiveKeys"), list):
        keys |= {k for k in auth["sensitiveKeys"] if isinstance(k, str)}
    requests: list[Any] = [auth.get(name) for name in ("get_token", "refresh_token", "userDetails", "test_token")]
    if isinstance(auth.get("registrationRequests"), list):
        requests += auth["registrationRequests"]
    for request in requests:
        if isinstance(_get(request, "mapping"), dict):
            keys |= set(request["mapping"])
    tenant_key = _get(document, "webhook", "tenantExtraction", "matchKey")
    if isinstance(tenant_key, str):
        keys.add(tenant_key)
    return keys


def _strings(node: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(node, str):
        yield loc, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, (*loc, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, (*loc, index))


def _placeholders(document: dict[str, Any], findings: _Findings) -> None:
    if not isinstance(document.get("auth"), dict):
        return  # a sync-only fragment: nothing to check [[key]] against
    producible = _producible_keys(document)
    for block in ("sync", "auth", "actions", "source"):
        for loc, text in _strings(document.get(block), (block,)):
            for key in CREDENTIAL_PLACEHOLDER.findall(text):
                if key not in producible:
                    findings.error(
                        loc,
                        f"placeholder [[{key}]] names a key that no auth step produces",
                        code="unknown-placeholder",
                        expected="a key of get_token/refresh_token/userDetails/registrationRequests mappings, "
                        "auth.config, auth.form or auth.sensitiveKeys",
                        hint=suggest(key, producible),
                    )


def lint(
    document: Any, *, locate: Locate | None = None, vocabulary: Vocabulary | None = None
) -> tuple[Definition | None, list[Finding]]:
    """Validate a raw document: return the model (None when structurally invalid) and all findings."""
    findings = _Findings(locate or (lambda loc: None))
    if not isinstance(document, dict):
        findings.error((), "a MiniApp definition must be an object", code="type", found=preview(document))
        return None, findings.items
    definition = _structure(document, findings)
    if definition is not None:
        _unknown_keys(definition, (), findings)
    _identity(document, findings)
    _triggers(document, findings)
    _handlers_vs_triggers(document, findings)
    _resources(document, findings, vocabulary)
    _schedule(document, findings)
    _handlers(document, findings, vocabulary)
    _webhook(document, findings, vocabulary)
    _secrets(document, findings)
    _placeholders(document, findings)
    return definition, _unique(findings.items)


def _unique(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str]] = set()
    out = []
    for finding in findings:
        if (finding.path, finding.message) not in seen:
            seen.add((finding.path, finding.message))
            out.append(finding)
    return out
