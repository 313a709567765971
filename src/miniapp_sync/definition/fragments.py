"""Place a guide snippet where it belongs in a MiniApp document (D1).

The Sync guide shows its blocks as fragments: `sync: { … }`, and a resource on its own,
`products: { contentType: …, apiMapping: … }`. The loader reads the fragment form as an
object; here an object that holds only resources (or only handlers) is put under
``sync.resources`` (or ``sync.webhooks.handlers``), with its positions moved along, so it
validates and maps like the same text inside a whole definition. (D1 names only the `sync: …`
fragment; placing a bare resource or handler list goes beyond it, so the guide's resource
snippet loads as written.)
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Final

from miniapp_sync.definition.findings import Loc
from miniapp_sync.definition.loader import Source
from miniapp_sync.definition.model import Definition
from miniapp_sync.errors import Finding

_DOCUMENT_KEYS: Final = frozenset(f.alias or name for name, f in Definition.model_fields.items())
# The keys that say what an entry is; an entry that has keys of both kinds is left alone.
_PLACES: Final[tuple[tuple[Loc, frozenset[str]], ...]] = (
    (("sync", "resources"), frozenset({"contentType", "endpoints", "apiMapping"})),
    (("sync", "webhooks", "handlers"), frozenset({"recordType", "operation", "mapping", "dataPath"})),
)


def _place_of(document: dict[str, Any]) -> Loc | None:
    if not document or set(document) & _DOCUMENT_KEYS:
        return None
    if not all(isinstance(entry, dict) for entry in document.values()):
        return None
    for prefix, marks in _PLACES:
        others = frozenset().union(*(m for p, m in _PLACES if p != prefix))
        if all(set(entry) & marks and not set(entry) & others for entry in document.values()):
            return prefix
    return None


def place(document: Any, source: Source) -> tuple[Any, Source, tuple[Finding, ...]]:
    """Return the document with a resources or handlers fragment put in its place, and a note saying so."""
    prefix = _place_of(document) if isinstance(document, dict) else None
    if prefix is None:
        return document, source, ()
    placed: Any = document
    for key in reversed(prefix):
        placed = {key: placed}
    positions = {(*prefix, *path) if path else path: at for path, at in source.positions.items()}
    where = ".".join(str(part) for part in prefix)
    note = Finding(
        "info",
        "",
        f"the file holds {where} entries only: read as {where} of a sync-only document",
        code="fragment",
        location=source.locate(()),
    )
    return placed, Source(source.filename, source.text, MappingProxyType(positions)), (note,)
