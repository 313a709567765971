"""Lint of what maps provider data: resources, handlers and the webhook block (D2, D12, D13).

Rule grammar errors come from the model (``rules.parse_rule``); here each parsed rule's
transform and function names and its path syntax are checked against the mapping layer's
vocabulary, and every mapping against the required fields of its content type.
"""

from __future__ import annotations

import re
from typing import Any, Final

from miniapp_sync.definition.content_types import CATALOG, content_type
from miniapp_sync.definition.findings import Findings, Loc, Vocabulary, dict_items, get, suggest
from miniapp_sync.definition.model import RECORD_TYPES
from miniapp_sync.definition.rules import LITERAL_STRING_HINT, Rule, RuleError, parse_rule
from miniapp_sync.errors import preview

# A field name has no blanks and no URL scheme: a rule string with either was meant as text.
_TEXT_LIKE: Final = re.compile(r"\s|://")


def _rules(mapping: Any, loc: Loc, findings: Findings, vocabulary: Vocabulary | None) -> dict[str, Rule]:
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
        if isinstance(raw, str) and _TEXT_LIKE.search(raw) and not raw.startswith("$"):
            findings.warning(
                rule_loc,
                f"{raw!r} is read as a path, but it reads like text",
                code="literal-like",
                hint=LITERAL_STRING_HINT,
            )
        for path_index, path in enumerate(rule.paths):
            where = (*rule_loc, "path") if rule.kind == "path" else (*rule_loc, "paths", path_index)
            # A rule's string is read as a path (D12); one that is no path was likely meant as text.
            _path(path, where, findings, vocabulary, hint=LITERAL_STRING_HINT)
    return rules


def _path(path: Any, loc: Loc, findings: Findings, vocabulary: Vocabulary | None, *, hint: str | None = None) -> None:
    if vocabulary is None or not isinstance(path, str) or path in ("", "$") or path.startswith("header:"):
        return
    problem = vocabulary.check_path(path)
    if problem:
        findings.error(loc, problem, code="path-syntax", found=preview(path), hint=hint)


def _required(rules: dict[str, Rule], fields: tuple[str, ...], loc: Loc, findings: Findings, what: str) -> None:
    for field in fields:
        if field not in rules:
            findings.error(
                loc,
                f"{what} does not map required field {field!r}",
                code="required-field",
                expected=", ".join(fields),
                hint=f"add {field}: '<path>'",
            )


def resources(document: dict[str, Any], findings: Findings, vocabulary: Vocabulary | None) -> None:
    """Check each resource: content type, mapping coverage, limits, details and response paths."""
    for key, resource in dict_items(get(document, "sync", "resources")):
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
        default, maximum = get(pagination, "defaultLimit"), get(pagination, "maxLimit")
        if isinstance(default, int) and isinstance(maximum, int) and default > maximum:
            findings.error(
                (*loc, "pagination", "defaultLimit"),
                "defaultLimit is above maxLimit",
                code="limit",
                expected=f"≤ {maximum}",
                found=str(default),
            )
        details_url = get(resource, "endpoints", "details", "url")
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
            value = get(response, prop)
            if isinstance(value, str) and not value.startswith("header:"):
                _path(value, (*loc, "responseMapping", prop), findings, vocabulary)


def handlers(document: dict[str, Any], findings: Findings, vocabulary: Vocabulary | None) -> None:
    """Check each handler: its resource or record type, its mapping and the fields it must map."""
    resources = get(document, "sync", "resources")
    resource_keys = set(resources) if isinstance(resources, dict) else set()
    for event, handler in dict_items(get(document, "sync", "webhooks", "handlers")):
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


def webhook(document: dict[str, Any], findings: Findings, vocabulary: Vocabulary | None) -> None:
    """Check the ``webhook`` block's paths, customer mapping, secret and verification."""
    webhook = document.get("webhook")
    if not isinstance(webhook, dict):
        return
    if "ecommerce" in webhook:
        findings.warning(
            ("webhook", "ecommerce"),
            "webhook.ecommerce is the deprecated legacy block: it is kept but not used",
            code="deprecated",
            hint="handlers live in sync.webhooks.handlers, keyed by event name, one per trigger event",
        )
    extraction = webhook.get("eventExtraction")
    if get(extraction, "source") in (None, "body"):
        _path(get(extraction, "path"), ("webhook", "eventExtraction", "path"), findings, vocabulary)
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
    secret_key = get(webhook, "verification", "secretKey")
    sensitive = get(document, "auth", "sensitiveKeys")
    if isinstance(secret_key, str) and isinstance(sensitive, list) and secret_key not in sensitive:
        findings.error(
            ("webhook", "verification", "secretKey"),
            f"verification secret {secret_key!r} is not listed in auth.sensitiveKeys",
            code="secret-not-sensitive",
            hint=f"add {secret_key!r} to auth.sensitiveKeys",
        )
    if get(webhook, "verification", "type") in (None, "none") and webhook.get("eventExtraction"):
        findings.warning(
            ("webhook", "verification"),
            "webhooks are not verified: anyone who knows the URL can write records",
            code="no-verification",
            hint="use hmac-sha256 over the raw body in production",
        )
