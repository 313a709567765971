"""Compatibility with the hosted MiniApps runtime (D41): the one registry of our extensions.

What is documented is the Sync guide and the MiniApps reference (``shared/spec``); everything
else this runtime accepts is an extension, listed in :data:`EXTENSIONS` and found in a
document by :func:`extension_uses`. ``validate --profile karzoun`` reports each use as a
finding, ``check`` always shows them, and ``package`` lists them with the compute functions
the definition calls (the guide asks submissions to document custom ``fn`` names).

A test holds the registry to the code: every transform the mapping layer knows and every
field of the model is either documented (:data:`DOCUMENTED_TRANSFORMS`, :data:`DOCUMENTED_FIELDS`)
or registered here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from miniapp_sync.definition.findings import Findings, Loc, dict_items, dotted, get
from miniapp_sync.definition.rules import RULE_KEYS, RuleError, parse_rule


class Profile(StrEnum):
    """Which runtime a definition is validated for."""

    default = "default"  # this runtime: every extension is welcome
    karzoun = "karzoun"  # the hosted MiniApps runtime: report every extension in use


@dataclass(frozen=True)
class Extension:
    """One feature beyond the documented vocabulary."""

    id: str
    what: str


@dataclass(frozen=True)
class Use:
    """Where a document uses an extension; ``detail`` names the value when it matters."""

    loc: Loc
    extension: Extension
    detail: str = ""

    @property
    def path(self) -> str:
        """Return the dotted path of the use."""
        return dotted(self.loc)

    def describe(self) -> str:
        """Return one line: the path, what the extension is, and the value used."""
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.path}: {self.extension.what}{detail}"


def _registry(*items: tuple[str, str]) -> dict[str, Extension]:
    return {key: Extension(key, what) for key, what in items}


# Field extensions are keyed by their path pattern ('*' is any key of that object).
EXTENSIONS: Final = _registry(
    ("sync.syncConfiguration.schedule", "syncConfiguration.schedule, a cron schedule of bulk syncs"),
    ("sync.resources.*.enabled", "a per-resource 'enabled' switch"),
    ("sync.resources.*.detectDeletes", "detectDeletes, removal of records the provider no longer lists"),
    ("sync.resources.*.incremental", "incremental sync since the last run's cursor"),
    ("sync.resources.*.idProperty", "idProperty, the record field that fills {id} in the details url"),
    ("sync.resources.*.endpoints.list.queryParams", "endpoint queryParams"),
    ("sync.resources.*.endpoints.details.queryParams", "endpoint queryParams"),
    ("sync.resources.*.pagination.style", "a pagination style other than page numbers"),
    ("sync.resources.*.pagination.pageParam", "pagination.pageParam, the page-number parameter's name"),
    ("sync.resources.*.pagination.startPage", "pagination.startPage"),
    ("sync.resources.*.pagination.offsetParam", "pagination.offsetParam (offset style)"),
    ("sync.resources.*.pagination.cursorParam", "pagination.cursorParam (cursor style)"),
    ("sync.resources.*.pagination.nextProperty", "pagination.nextProperty (next-link style)"),
    ("sync.resources.*.responseMapping.totalPagesProperty", "responseMapping.totalPagesProperty"),
    ("webhook.tenantExtraction", "webhook.tenantExtraction, the tenant of a shared-URL delivery"),
    ("webhook.merchantExtraction", "webhook.merchantExtraction, the tenant of a shared-URL delivery"),
    # Values of documented fields.
    ("value:bare-array", "responseMapping.dataProperty '' or '$' for a response that is a bare list"),
    ("value:header-total", "a total read from a response header ('header:…')"),
    ("value:record-type", "a handler recordType beyond 'order' and 'abandonedCart'"),
    # Rule forms (D12): the guide shows paths, {path, transform} and {paths, transform: 'coalesce'}.
    ("rule:literal", "a bare literal rule (42, true, null)"),
    ("rule:value", "a { value } literal rule"),
    ("rule:default", "a rule 'default'"),
    ("rule:transform-list", "a list of transforms applied in turn"),
    ("rule:transform-object", "a transform written as { name, …options }"),
    ("rule:options", "a transform option"),
    ("rule:args", "compute 'args'"),
    # Transforms beyond the guide's table.
    ("transform:toInteger", "transform 'toInteger'"),
    ("transform:toBoolean", "transform 'toBoolean'"),
    ("transform:lowercase", "transform 'lowercase'"),
    ("transform:trim", "transform 'trim'"),
    ("transform:normalizePhone", "transform 'normalizePhone'"),
    ("transform:toISODate", "transform 'toISODate'"),
)
DOCUMENTED_TRANSFORMS: Final = frozenset({"toString", "toNumberOrNull", "coalesce", "compute", "mapItems", "joinCodes"})
DOCUMENTED_RECORD_TYPES: Final = frozenset({"order", "abandonedCart"})
# The model's fields that the guide or the reference document (path patterns, '*' any key).
DOCUMENTED_FIELDS: Final = frozenset(
    {
        *("sync.baseUrl", "sync.headers", "sync.resources", "sync.webhooks", "sync.webhooks.handlers"),
        *(f"sync.syncConfiguration.{k}" for k in ("enabled", "batchSize", "rateLimitPerSecond", "timeout")),
        "sync.syncConfiguration",
        *(
            f"sync.resources.*.{k}"
            for k in ("name", "displayName", "description", "icon", "contentType", "expandDetails", "endpoints")
        ),
        *(f"sync.resources.*.{k}" for k in ("pagination", "responseMapping", "apiMapping")),
        *(f"sync.resources.*.endpoints.{e}.{k}" for e in ("list", "details") for k in ("url", "method")),
        "sync.resources.*.endpoints.list",
        "sync.resources.*.endpoints.details",
        *(f"sync.resources.*.pagination.{k}" for k in ("paramName", "defaultLimit", "maxLimit")),
        *(f"sync.resources.*.responseMapping.{k}" for k in ("dataProperty", "totalProperty")),
        *(f"sync.webhooks.handlers.*.{k}" for k in ("recordType", "operation", "mapping", "resource", "dataPath")),
    }
)
_MAPPINGS: Final = (
    ("sync", "resources", "*", "apiMapping"),
    ("sync", "webhooks", "handlers", "*", "mapping"),
    ("webhook", "customerExtraction", "mapping"),
)


def _expand(node: Any, pattern: tuple[str, ...], loc: Loc = ()) -> Iterator[tuple[Loc, Any]]:
    """Yield (location, value) of every key path in ``node`` that matches ``pattern``."""
    if not pattern:
        yield loc, node
        return
    if not isinstance(node, dict):
        return
    head, rest = pattern[0], pattern[1:]
    keys = list(node) if head == "*" else [head] if head in node else []
    for key in keys:
        yield from _expand(node[key], rest, (*loc, key))


def _field_uses(document: dict[str, Any]) -> Iterator[Use]:
    for key, extension in EXTENSIONS.items():
        if ":" in key:
            continue  # not a field
        for loc, value in _expand(document, tuple(key.split("."))):
            detail = repr(value) if key.endswith(".style") else ""
            yield Use(loc, extension, detail)


def _value_uses(document: dict[str, Any]) -> Iterator[Use]:
    for key, resource in dict_items(get(document, "sync", "resources")):
        loc: Loc = ("sync", "resources", key, "responseMapping")
        if get(resource, "responseMapping", "dataProperty") in ("", "$"):
            yield Use((*loc, "dataProperty"), EXTENSIONS["value:bare-array"])
        for prop in ("totalProperty", "totalPagesProperty"):
            value = get(resource, "responseMapping", prop)
            if isinstance(value, str) and value.startswith("header:"):
                yield Use((*loc, prop), EXTENSIONS["value:header-total"], repr(value))
    for event, handler in dict_items(get(document, "sync", "webhooks", "handlers")):
        record_type = handler.get("recordType")
        if isinstance(record_type, str) and record_type not in DOCUMENTED_RECORD_TYPES:
            loc = ("sync", "webhooks", "handlers", event, "recordType")
            yield Use(loc, EXTENSIONS["value:record-type"], repr(record_type))


def _rule_uses(mapping: Any, loc: Loc, functions: dict[str, list[Loc]]) -> Iterator[Use]:
    """Yield the extension uses of each rule of a mapping; collect compute ``fn`` names into ``functions``."""
    if not isinstance(mapping, dict):
        return
    for target, raw in mapping.items():
        rule_loc = (*loc, target)
        try:
            rule = parse_rule(raw)
        except RuleError:
            continue  # reported by validation; nothing to say about compatibility
        if not isinstance(raw, dict):
            if rule.kind == "literal":
                yield Use(rule_loc, EXTENSIONS["rule:literal"], repr(raw))
            continue
        for key, form in (("value", "rule:value"), ("default", "rule:default"), ("args", "rule:args")):
            if key in raw:
                yield Use((*rule_loc, key), EXTENSIONS[form])
        transform = raw.get("transform")
        items = transform if isinstance(transform, list) else [transform] if transform is not None else []
        if isinstance(transform, list):
            yield Use((*rule_loc, "transform"), EXTENSIONS["rule:transform-list"])
        if any(isinstance(item, dict) for item in items):
            yield Use((*rule_loc, "transform"), EXTENSIONS["rule:transform-object"])
        for option in sorted(set(raw) - RULE_KEYS - {"args"}):
            yield Use((*rule_loc, option), EXTENSIONS["rule:options"], repr(option))
        for step in rule.transforms:
            extension = EXTENSIONS.get(f"transform:{step.name}")
            if extension is not None:
                yield Use((*rule_loc, "transform"), extension)
            if step.fn is not None:
                functions.setdefault(step.fn, []).append((*rule_loc, "fn"))
        if isinstance(raw.get("itemMapping"), dict):
            yield from _rule_uses(raw["itemMapping"], (*rule_loc, "itemMapping"), functions)


@dataclass(frozen=True)
class Compatibility:
    """Every extension a document uses, and the compute functions it calls (with where)."""

    uses: tuple[Use, ...]
    functions: dict[str, tuple[Loc, ...]]

    def lines(self) -> list[str]:
        """Return one line per use and per compute function, for reports."""
        out = [use.describe() for use in self.uses]
        out += [
            f"{', '.join(dotted(loc) for loc in locs)}: compute function {fn!r} (document it in the submission)"
            for fn, locs in sorted(self.functions.items())
        ]
        return out


def compatibility(document: Any) -> Compatibility:
    """Return every extension the raw document uses, in document order, and its compute functions."""
    if not isinstance(document, dict):
        return Compatibility((), {})
    functions: dict[str, list[Loc]] = {}
    uses = [*_field_uses(document), *_value_uses(document)]
    for pattern in _MAPPINGS:
        for loc, mapping in _expand(document, pattern):
            uses += _rule_uses(mapping, loc, functions)
    return Compatibility(tuple(uses), {fn: tuple(locs) for fn, locs in functions.items()})


def lint_compatibility(document: dict[str, Any], findings: Findings) -> None:
    """Report each extension in use, and each compute function, as a warning with its path (D41)."""
    found = compatibility(document)
    for use in found.uses:
        detail = f" ({use.detail})" if use.detail else ""
        findings.warning(
            use.loc,
            f"{use.extension.what}{detail} is an extension of miniapp-sync: the hosted runtime may not run it",
            code="extension",
            hint="keep to the documented vocabulary, or check that the hosted runtime supports it",
        )
    for fn, locs in found.functions.items():
        for loc in locs:
            findings.warning(
                loc,
                f"compute function {fn!r} must exist on the hosted runtime",
                code="compute-function",
                hint="document it in the submission (miniapp-sync package lists it)",
            )
