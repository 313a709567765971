"""Placeholders in request templates (D29): ``[[key]]``, ``{{key}}`` and ``{id}``.

- ``[[key]]`` reads the installation's credentials, then its metadata. Never user input.
- ``{{key}}`` reads user input, chained-request output, ``auth.config``, system values
  (``webhookUrl``, ``redirect_uri``, ``code``, …), then metadata. Never credentials.
- A placeholder that is the whole value keeps the value's type (objects stay objects);
  inside a longer string it is rendered as text.
- An unresolved placeholder is an error naming the key: an empty string is never sent.
- ``Authorization: Basic user:pass`` is Base64-encoded after resolution (a value without
  ``:`` is taken as already encoded).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from miniapp_sync.definition.placeholders import CREDENTIAL, READS, USER, shown
from miniapp_sync.errors import InstallationError

_ABSENT = object()


@dataclass(frozen=True)
class Context:
    """Where placeholders read their values from, for one installation and one request."""

    credentials: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    user_input: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    system: Mapping[str, Any] = field(default_factory=dict)
    chained: Mapping[str, Any] = field(default_factory=dict)

    def credential(self, key: str) -> Any:
        """Return ``[[key]]``: credentials first, then metadata (D29)."""
        return self._read("[[", key)

    def user(self, key: str) -> Any:
        """Return ``{{key}}``: user input, chained output, auth.config, system values, then metadata."""
        return self._read("{{", key)

    def _read(self, kind: str, key: str) -> Any:
        # The order of bags is the one validate checks against (definition.placeholders.READS).
        bags: dict[str, Mapping[str, Any]] = self.__dict__
        return _first(key, *(bags[bag] for bag in READS[kind]))

    def with_values(self, **bags: Mapping[str, Any]) -> Context:
        """Return a copy with some bags replaced (e.g. fresh credentials after a refresh)."""
        return Context(**{**self.__dict__, **bags})


def _first(key: str, *bags: Mapping[str, Any]) -> Any:
    for bag in bags:
        value = bag.get(key, _ABSENT)
        # An empty auth.config value means "provided at install time": it does not resolve.
        if value is not _ABSENT and value is not None and value != "":
            return value
    return _ABSENT


def _resolve(kind: str, key: str, context: Context, where: str) -> Any:
    value = context.credential(key) if kind == "[[" else context.user(key)
    if value is _ABSENT:
        source = "credential or metadata" if kind == "[[" else "user input, auth.config or system value"
        raise InstallationError(f"unresolved placeholder {shown(kind, key)} in {where}: no {source} named {key!r}")
    return value


def render(value: Any, context: Context, where: str = "request") -> Any:
    """Resolve every placeholder in a template value (strings, objects, lists)."""
    if isinstance(value, str):
        return _render_text(value, context, where)
    if isinstance(value, Mapping):
        return {k: render(v, context, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render(v, context, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _render_text(text: str, context: Context, where: str) -> Any:
    if "[[" not in text and "{{" not in text:
        return text
    for kind, pattern in (("[[", CREDENTIAL), ("{{", USER)):
        whole = pattern.fullmatch(text)
        if whole:  # the placeholder is the whole value: keep its type
            return _resolve(kind, whole.group(1), context, where)

    def credential(match: re.Match[str]) -> str:
        return _as_text(_resolve("[[", match.group(1), context, where))

    def user(match: re.Match[str]) -> str:
        return _as_text(_resolve("{{", match.group(1), context, where))

    return USER.sub(user, CREDENTIAL.sub(credential, text))


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def render_headers(headers: Mapping[str, Any], context: Context, where: str = "headers") -> dict[str, str]:
    """Resolve header templates to strings, Base64-encoding ``Basic user:pass`` values."""
    out: dict[str, str] = {}
    for name, template in headers.items():
        value = _as_text(render(template, context, f"{where}.{name}"))
        if name.lower() == "authorization":
            value = encode_basic(value)
        out[name] = value
    return out


def encode_basic(value: str) -> str:
    """Encode ``Basic user:pass`` as HTTP Basic wants; pass anything else through unchanged."""
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() != "basic" or ":" not in credentials:
        return value
    return f"{scheme} {base64.b64encode(credentials.encode()).decode()}"


def fill_id(url: str, record_id: Any) -> str:
    """Fill ``{id}`` in a detail URL with the record's id, URL-quoted."""
    return url.replace("{id}", quote(_as_text(record_id), safe=""))
