"""MiniApp definitions: load a file (JSON, JSON5/JS, YAML), validate it, and give the typed model."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from miniapp_sync.definition.compatibility import Profile
from miniapp_sync.errors import DefinitionInvalid, Finding

if TYPE_CHECKING:
    from miniapp_sync.definition.lint import Vocabulary
    from miniapp_sync.definition.loader import Source
    from miniapp_sync.definition.model import Definition

__all__ = [
    "Definition",
    "LoadedDefinition",
    "Profile",
    "Source",
    "Vocabulary",
    "inspect_definition",
    "load_definition",
]


@dataclass(frozen=True)
class LoadedDefinition:
    """A definition file after validation: the model (None when invalid), the raw document and all findings."""

    definition: Definition | None
    document: Any
    source: Source
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> tuple[Finding, ...]:
        """Return the findings of severity 'error'."""
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def valid(self) -> bool:
        """Return True when there are no errors (warnings are allowed)."""
        return self.definition is not None and not self.errors


def inspect_definition(
    path: str | os.PathLike[str] | None = None,
    *,
    text: str | None = None,
    filename: str = "<string>",
    vocabulary: Vocabulary | None = None,
    profile: Profile = Profile.default,
) -> LoadedDefinition:
    """Load and validate a definition, returning every finding; raise only when the text does not parse."""
    from miniapp_sync.definition.fragments import place
    from miniapp_sync.definition.lint import lint
    from miniapp_sync.definition.loader import load_file, parse_text

    document, source = load_file(path) if path is not None else parse_text(text or "", filename)
    document, source, placed = place(document, source)
    definition, findings = lint(document, locate=source.locate, vocabulary=vocabulary, profile=profile)
    return LoadedDefinition(definition, document, source, (*placed, *findings))


def load_definition(
    path: str | os.PathLike[str] | None = None,
    *,
    text: str | None = None,
    filename: str = "<string>",
    vocabulary: Vocabulary | None = None,
) -> Definition:
    """Load a definition and return its model; raise DefinitionInvalid listing every error."""
    loaded = inspect_definition(path, text=text, filename=filename, vocabulary=vocabulary)
    if not loaded.valid or loaded.definition is None:
        raise DefinitionInvalid(loaded.findings, filename=loaded.source.filename)
    return loaded.definition


# The CLI names Profile in its options; the model (pydantic), the loaders and lint load when a
# definition is first read, or one of these names first used.
_LAZY = {
    "Definition": "miniapp_sync.definition.model",
    "Source": "miniapp_sync.definition.loader",
    "Vocabulary": "miniapp_sync.definition.lint",
}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'miniapp_sync.definition' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # resolved once; later look-ups do not come here
    return value
