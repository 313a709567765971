"""What every lint module shares: locations, the findings collector, near-miss hints (D2).

The checks are split by concern (``lint`` orchestrates; ``lint_mappings``, ``placeholders``
and ``compatibility`` hold theirs); they all read the raw document defensively and report
through one :class:`Findings`, so a broken part elsewhere never hides a problem here.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from miniapp_sync.errors import Finding

Loc = tuple[str | int, ...]
Locate = Callable[[Loc], str | None]


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


def get(node: Any, *keys: str) -> Any:
    """Return the value under ``keys`` in nested dicts, or None where any step is missing or no dict."""
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def dict_items(node: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield the (key, value) pairs of a dict whose values are dicts; nothing for anything else."""
    if isinstance(node, dict):
        yield from ((k, v) for k, v in node.items() if isinstance(v, dict))


def sync_only(document: dict[str, Any]) -> bool:
    """Return True for a development fragment: a document holding nothing but ``sync`` (D1)."""
    return set(document) <= {"sync"}


class Findings:
    """Collects findings, each located by its dotted path and, when known, ``file:line:col``."""

    def __init__(self, locate: Locate) -> None:
        self.items: list[Finding] = []
        self._locate = locate

    def add(self, severity: str, loc: Loc, message: str, *, code: str, **detail: str | None) -> None:
        """Add a finding of any severity."""
        self.items.append(
            Finding(severity, dotted(loc), message, code=code, location=self._locate(loc), **detail)  # type: ignore[arg-type]
        )

    def error(self, loc: Loc, message: str, *, code: str, **detail: str | None) -> None:
        """Add an error: the definition cannot be used as it is."""
        self.add("error", loc, message, code=code, **detail)

    def warning(self, loc: Loc, message: str, *, code: str, **detail: str | None) -> None:
        """Add a warning: usable, but probably not what was meant."""
        self.add("warning", loc, message, code=code, **detail)
