"""Every exception miniapp-sync raises on purpose.

    MiniAppSyncError
    ├── DefinitionError           a definition file cannot be used
    │   ├── DefinitionSyntaxError     the text does not parse (file:line:col)
    │   └── DefinitionInvalid         it parses, but validation found errors (all of them)
    ├── MappingError              a mapping rule cannot be compiled or applied
    │   ├── PathSyntaxError           a dot path or JSONPath is malformed (position in the path)
    │   ├── TransformError            a transform or compute function failed on a value
    │   └── RecordRejected            a mapped record misses a required field (D19)
    ├── ProviderError             a provider HTTP call failed
    ├── StoreError                the store cannot read or write
    │   └── StoreMissing              there is no store yet where a command only reads
    ├── InstallationError         an installation, its credentials or a placeholder is unusable
    │   ├── InstallationConflict      a flow would replace an installation it was not allowed to (D31a)
    │   └── SealError                 a sealed token (an OAuth start link) is forged, altered or expired
    ├── WebhookError              a delivery cannot be accepted
    ├── ListenError               a server cannot listen where asked (a busy port)
    ├── ProcessorDied             serve's separate inbox processor ended while the server ran
    └── UsageError                a command or request names something that does not exist
                                  (a resource): the CLI exits 2, as for an invalid definition

Messages say what failed, where, what was expected and what was found, and a hint when
one is known. Values quoted in messages go through ``preview()`` so they stay short.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

PREVIEW_LIMIT = 60


def preview(value: Any, limit: int = PREVIEW_LIMIT) -> str:
    """Render a value for a message: JSON-ish, one line, truncated."""
    import orjson  # here: every command imports this module, few render a value (and --help never does)

    shown = _head(value, [limit])
    try:
        text = orjson.dumps(shown, default=repr).decode()
    except TypeError:
        text = repr(shown)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _head(value: Any, budget: list[int]) -> Any:
    """Return ``value`` with its lists, dicts and strings cut to what ``budget`` characters can show.

    A preview of a provider's million line items must not serialise them all (seconds, and
    hundreds of MB, for 60 characters). Each entry kept shows as one character at least, so a
    value cut here still renders past the limit, and its preview ends in "…" as it should.
    """
    if value.__class__ is str:
        return value[: budget[0] + 1]
    if value.__class__ is dict:
        kept = {}
        for key, entry in value.items():
            if budget[0] <= 0:
                break
            budget[0] -= 1
            kept[key] = _head(entry, budget)
        return kept
    if value.__class__ is list or value.__class__ is tuple:
        entries = []
        for entry in value:
            if budget[0] <= 0:
                break
            budget[0] -= 1
            entries.append(_head(entry, budget))
        return entries
    return value


def _window(line: str, at: int, width: int = 100) -> tuple[str, int]:
    """Cut a long source line (minified JSON) to ``width`` characters around ``at``; return it and the caret."""
    if len(line) <= width:
        return line, at
    start = max(0, min(at - width // 2, len(line) - width))
    shown = line[start : start + width]
    caret = at - start
    if start > 0:
        shown, caret = "…" + shown, caret + 1
    if start + width < len(line):
        shown += "…"
    return shown, caret


class MiniAppSyncError(Exception):
    """Root of every error miniapp-sync raises on purpose."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem (or warning) found in a definition, located by its dotted path."""

    severity: Literal["error", "warning", "info"]
    path: str
    message: str
    expected: str | None = None
    found: str | None = None
    hint: str | None = None
    code: str = "invalid"
    location: str | None = field(default=None, compare=False)  # file:line:col when known

    def render(self) -> str:
        """Render as one block of text: where, what, expected vs found, hint."""
        where = self.path or "(document)"
        if self.location:
            where = f"{self.location} {where}"
        parts = [f"{where}: {self.message}"]
        if self.expected is not None:
            parts.append(f"expected {self.expected}")
        if self.found is not None:
            parts.append(f"found {self.found}")
        text = "; ".join(parts)
        if self.hint:
            text += f" (hint: {self.hint})"
        return text

    def as_dict(self) -> dict[str, Any]:
        """Return the finding as a JSON-ready dict (for ``--format json``)."""
        return {
            "severity": self.severity,
            "code": self.code,
            "path": self.path,
            "location": self.location,
            "message": self.message,
            "expected": self.expected,
            "found": self.found,
            "hint": self.hint,
        }


class DefinitionError(MiniAppSyncError):
    """A definition file cannot be used."""


class DefinitionSyntaxError(DefinitionError):
    """The definition text does not parse; carries file, line and column."""

    def __init__(
        self,
        message: str,
        *,
        filename: str,
        line: int | None = None,
        column: int | None = None,
        source_line: str | None = None,
    ) -> None:
        self.filename = filename
        self.line = line
        self.column = column
        self.source_line = source_line
        self.reason = message
        where = filename if line is None else f"{filename}:{line}:{column or 1}"
        text = f"{where}: {message}"
        if source_line is not None and column is not None:
            shown, caret = _window(source_line, column - 1)
            text += f"\n    {shown}\n    {' ' * caret}^"
        super().__init__(text)


class DefinitionInvalid(DefinitionError):
    """Validation found errors; ``findings`` holds all of them, warnings included."""

    def __init__(self, findings: Sequence[Finding], *, filename: str | None = None) -> None:
        self.findings = tuple(findings)
        self.filename = filename
        errors = [f for f in self.findings if f.severity == "error"]
        head = f"{filename}: " if filename else ""
        lines = [f"{head}definition is invalid ({len(errors)} error{'s' * (len(errors) != 1)})"]
        lines += [f"  - {f.render()}" for f in errors]
        super().__init__("\n".join(lines))


class MappingError(MiniAppSyncError):
    """A mapping rule cannot be compiled or applied."""


class PathSyntaxError(MappingError):
    """A path is malformed; ``position`` is the 0-based offset of the problem in ``path``."""

    def __init__(self, path: str, reason: str, position: int | None = None) -> None:
        self.path = path
        self.reason = reason
        self.position = position
        at = "" if position is None else f" at position {position}"
        super().__init__(f"invalid path {path!r}{at}: {reason}")


class TransformError(MappingError):
    """A transform or compute function failed on a value."""


class RecordRejected(MappingError):
    """A mapped record cannot be stored (D19): the problems say which field and why."""

    def __init__(self, message: str, problems: Sequence[Any] = ()) -> None:
        self.problems = tuple(problems)
        super().__init__(message)


class ProviderError(MiniAppSyncError):
    """A provider HTTP call failed; where, when known: the resource, the redacted URL, the list page."""

    resource: str | None = None
    url: str | None = None
    page: int | None = None  # set by the list walk (provider.pagination) when a page failed


class StoreError(MiniAppSyncError):
    """The store cannot read or write."""


class StoreMissing(StoreError):
    """There is no store yet where a command that only reads looked for one."""

    hint = (
        "create one with `miniapp-sync install DEFINITION --tenant …`, or `miniapp-sync db upgrade` "
        "(PostgreSQL: `db upgrade --create`); check --store / MINIAPP_SYNC_STORE if it lives elsewhere"
    )

    def __init__(self, message: str) -> None:
        super().__init__(f"{message} (hint: {self.hint})")


class InstallationError(MiniAppSyncError):
    """An installation, its credentials or a placeholder is unusable."""


class InstallationConflict(InstallationError):
    """A flow would replace an existing installation without an explicit reconnect (D31a)."""


class SealError(InstallationError):
    """A sealed token is forged, altered or expired; ``reason`` is ``invalid`` or ``expired``."""

    def __init__(self, reason: Literal["invalid", "expired"], message: str) -> None:
        super().__init__(message)
        self.reason = reason


class WebhookError(MiniAppSyncError):
    """A webhook delivery cannot be accepted."""


class ListenError(MiniAppSyncError):
    """A server cannot listen on the address it was asked to."""


class ProcessorDied(MiniAppSyncError):
    """``serve``'s separate inbox processor process ended while the server ran; the server stopped."""


class UsageError(MiniAppSyncError):
    """A command or request asks for something that does not exist.

    The CLI exits 2 on it (bad usage), as it does on an invalid definition.
    """
