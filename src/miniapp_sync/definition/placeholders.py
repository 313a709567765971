"""Placeholders (D29): the one rule for where ``[[key]]`` and ``{{key}}`` read, and its lint.

``templating.Context`` resolves a placeholder from the bags named in :data:`READS`, first
value wins; ``validate`` checks each placeholder against the keys a definition declares for
those same bags (:func:`declared_keys`). Both sides read this table, so a definition that
validates cannot fail later with "unresolved placeholder" for a key it never declared.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final

from miniapp_sync.definition.findings import Findings, Loc, get, suggest

CREDENTIAL: Final = re.compile(r"\[\[\s*([^\[\]]+?)\s*\]\]")
USER: Final = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")

# The bags each kind of placeholder reads, in order. Credentials are never {{key}}; user input
# (the install form) is never [[key]] (the reference's table in miniapps-reference §2.3).
READS: Final[dict[str, tuple[str, ...]]] = {
    "[[": ("credentials", "metadata"),
    "{{": ("user_input", "chained", "config", "system", "metadata"),
}
# What the runtime itself provides as {{key}}: the endpoints it serves, the tenant, and the
# OAuth callback's code (installations.service builds them).
SYSTEM_KEYS: Final = frozenset({"webhookUrl", "redirect_uri", "subdomain", "tenant", "code"})
_FILLED_BY: Final = {
    "credentials": "get_token/refresh_token/registrationRequests object mappings or auth.sensitiveKeys",
    "metadata": "auth.userDetails.mapping or webhook.tenantExtraction.matchKey",
    "user_input": "auth.form",
    "chained": "a request's [{name, value}] mapping",
    "config": "auth.config",
    "system": "the runtime (" + ", ".join(sorted(SYSTEM_KEYS)) + ")",
}
_CREDENTIAL_REQUESTS: Final = ("get_token", "refresh_token")


def shown(kind: str, key: str) -> str:
    """Return the placeholder as written: ``[[key]]`` or ``{{key}}``."""
    return f"[[{key}]]" if kind == "[[" else f"{{{{{key}}}}}"


def _mapping_keys(request: Any, *, persisted: bool) -> set[str]:
    mapping = get(request, "mapping")
    if persisted and isinstance(mapping, dict):
        return {k for k in mapping if isinstance(k, str)}
    if not persisted and isinstance(mapping, list):
        return {m["name"] for m in mapping if isinstance(m, dict) and isinstance(m.get("name"), str)}
    return set()


def declared_keys(document: dict[str, Any]) -> dict[str, set[str]]:
    """Return, per bag of :data:`READS`, the keys an installation of this definition can hold."""
    auth: dict[str, Any] = document["auth"] if isinstance(document.get("auth"), dict) else {}
    registrations = auth.get("registrationRequests")
    registrations = registrations if isinstance(registrations, list) else []
    requests = [auth.get(name) for name in (*_CREDENTIAL_REQUESTS, "userDetails", "test_token")] + registrations
    credentials = {k for k in auth.get("sensitiveKeys") or [] if isinstance(k, str)}  # pasted at install
    for request in [auth.get(name) for name in _CREDENTIAL_REQUESTS] + registrations:
        credentials |= _mapping_keys(request, persisted=True)
    metadata = _mapping_keys(auth.get("userDetails"), persisted=True)
    tenant_key = get(document, "webhook", "tenantExtraction", "matchKey")
    if isinstance(tenant_key, str):
        metadata.add(tenant_key)  # given at install (--metadata), matched against deliveries (D24)
    chained: set[str] = set()
    for request in requests:
        chained |= _mapping_keys(request, persisted=False)
    bags = {"user_input": "form", "config": "config"}
    own = {bag: set(auth[key]) if isinstance(auth.get(key), dict) else set() for bag, key in bags.items()}
    return {
        "credentials": credentials,
        "metadata": metadata,
        "chained": chained,
        "system": set(SYSTEM_KEYS),
        **own,
    }


def strings(node: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    """Yield every string in a raw document value with its location."""
    if isinstance(node, str):
        yield loc, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(value, (*loc, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from strings(value, (*loc, index))


def lint_placeholders(document: dict[str, Any], findings: Findings) -> None:
    """Report each placeholder that no bag it reads can hold, by the rule the runtime resolves with."""
    if not isinstance(document.get("auth"), dict):
        return  # a sync-only fragment: nothing to check placeholders against
    declared = declared_keys(document)
    for block in ("sync", "auth", "actions", "source"):
        for loc, text in strings(document.get(block), (block,)):
            for kind, pattern in (("[[", CREDENTIAL), ("{{", USER)):
                for key in pattern.findall(text):
                    _check(kind, key, loc, declared, findings)


def _check(kind: str, key: str, loc: Loc, declared: dict[str, set[str]], findings: Findings) -> None:
    reads = READS[kind]
    if any(key in declared[bag] for bag in reads):
        return
    other = "{{" if kind == "[[" else "[["
    elsewhere = [bag for bag in READS[other] if key in declared[bag]]
    if elsewhere:  # declared, but in a bag this kind never reads: say which kind does
        hint = f"{_FILLED_BY[elsewhere[0]]} fills {shown(other, key)}, not {shown(kind, key)}"
    else:
        known = set().union(*(declared[bag] for bag in reads))
        close = suggest(key, known)
        hint = close or f"declare {key!r} in " + " or ".join(_FILLED_BY[bag] for bag in reads[:2])
    # [[key]] can only come from what the definition's auth steps store; a {{key}} may also be
    # an install input an operator passes by hand (install --input), so it is only a warning.
    findings.add(
        "error" if kind == "[[" else "warning",
        loc,
        f"placeholder {shown(kind, key)} names a key that nothing fills at run time",
        code="unknown-placeholder",
        expected=f"{shown(kind, 'key')} reads " + ", then ".join(f"{bag} ({_FILLED_BY[bag]})" for bag in reads),
        found=repr(key),
        hint=hint,
    )
