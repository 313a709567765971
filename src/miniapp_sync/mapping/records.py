"""Mapped records and their problems; the content-type check that rejects a record whole (D19)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from miniapp_sync.definition.content_types import ContentType


@dataclass(frozen=True, slots=True)
class Problem:
    """What went wrong with one target field: the rule, the path and a preview of the value."""

    field: str
    message: str
    path: str | None = None
    value: str | None = None  # a truncated preview, never the whole value

    def render(self) -> str:
        """Render as one line: field, message, path and value preview."""
        text = f"{self.field}: {self.message}"
        if self.path is not None:
            text += f" (path {self.path!r})"
        if self.value is not None:
            text += f"; found {self.value}"
        return text

    def as_dict(self) -> dict[str, Any]:
        """Return the problem as a JSON-ready dict."""
        return {"field": self.field, "message": self.message, "path": self.path, "value": self.value}


class MappedRecord(NamedTuple):
    """The result of mapping one source record: the data, its problems, and whether it must be rejected.

    A NamedTuple, not a frozen dataclass: one is built per record, and this is 3x cheaper.
    """

    data: dict[str, Any]
    problems: tuple[Problem, ...] = ()
    rejected: bool = False

    @property
    def code(self) -> Any:
        """Return the record's identity within its content type."""
        return self.data.get("code")

    def reason(self) -> str:
        """Return every problem on one line each (the dead-letter reason)."""
        return "\n".join(p.render() for p in self.problems)


def missing_required(
    data: Mapping[str, Any], content_type: ContentType, paths: Mapping[str, str | None]
) -> list[Problem]:
    """Return a problem for each required field that is absent or empty in ``data``."""
    problems = []
    for name in content_type.required:
        value = data.get(name)
        if value is None or value == "":
            where = paths.get(name)
            found = "nothing" if name not in data else repr(value)
            problems.append(
                Problem(
                    name,
                    f"required field of {content_type.name} is {'missing' if name not in data else 'empty'}",
                    path=where,
                    value=found,
                )
            )
    return problems
