"""Input bounds of a definition (D1): size, devices, nesting depth, and YAML alias expansion.

A definition is a few hundred KB; these refuse hostile input (a 370-byte "billion laughs"
YAML, a 100,000-deep array, /dev/zero) with a clear error in well under a second, before
anything walks the document.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from miniapp_sync.definition.lexer import ScanError
from miniapp_sync.errors import DefinitionSyntaxError

# Input bounds (D1): a definition is a few hundred KB; these stop hostile input in well under a second.
MAX_BYTES: Final = 10 * 1024 * 1024
MAX_DEPTH: Final = 200
ALIAS_BUDGET: Final = 100_000  # nodes YAML aliases may add beyond those written (billion laughs)


def read_bounded(path: Path) -> bytes:
    """Read a regular file of at most MAX_BYTES; refuse devices, pipes and larger files (D1)."""
    mode = path.stat().st_mode  # before opening: opening a pipe would wait for a writer
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(path)
    if not stat.S_ISREG(mode):
        raise DefinitionSyntaxError(
            "cannot read the definition: not a regular file (a device or a pipe)", filename=str(path)
        )
    with path.open("rb") as handle:
        raw = handle.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise DefinitionSyntaxError(
            f"cannot read the definition: it is larger than {MAX_BYTES // 2**20} MiB", filename=str(path)
        )
    return raw


def data_children(node: Any) -> list[Any] | None:
    """Return a parsed value's children, or None for a scalar."""
    if isinstance(node, dict):
        return list(node.values())
    return node if isinstance(node, list) else None


def check_shape(root: Any, children: Callable[[Any], list[Any] | None], offset: int | None) -> None:
    """Refuse nesting deeper than MAX_DEPTH, cycles, and aliases expanding past ALIAS_BUDGET.

    One pass over each distinct node (a node aliases repeat is measured once and reused), so
    a billion-laughs document is refused after a few thousand steps, before anything walks it.
    """
    sizes: dict[int, tuple[int, int]] = {}  # id -> (expanded size, height) of each distinct collection
    leaves: set[int] = set()  # distinct scalars: with the collections, what is written
    on_path: set[int] = set()
    stack: list[tuple[Any, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, closing = stack.pop()
        key = id(node)
        if closing:
            on_path.discard(key)
            measured = []
            for child in children(node) or ():
                found = sizes.get(id(child))
                if found is None:
                    leaves.add(id(child))
                measured.append(found or (1, 0))
            size = 1 + sum(m[0] for m in measured)
            sizes[key] = size, 1 + max((m[1] for m in measured), default=0)
            if size > len(sizes) + len(leaves) + ALIAS_BUDGET:
                raise ScanError(
                    f"YAML aliases expand the definition past {ALIAS_BUDGET:,} nodes beyond what is written "
                    "(nested aliases, as in a 'billion laughs' document); write the repeated parts out",
                    offset,
                )
            continue
        if key in on_path:
            raise ScanError("an alias refers to a node that contains it: the definition would be infinite", offset)
        if key in sizes:
            if depth - 1 + sizes[key][1] > MAX_DEPTH:
                raise ScanError(f"the definition is nested deeper than {MAX_DEPTH} levels", offset)
            continue
        if depth > MAX_DEPTH:
            raise ScanError(f"the definition is nested deeper than {MAX_DEPTH} levels", offset)
        on_path.add(key)
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in children(node) or () if children(child) is not None)
