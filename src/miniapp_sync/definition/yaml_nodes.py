"""YAML definitions: PyYAML's nodes read with the position of every key, duplicate keys refused.

Imported by the loader for a YAML definition only: JSON and JSON5 ones never load PyYAML.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import yaml

from miniapp_sync.definition.bounds import check_shape
from miniapp_sync.definition.lexer import DuplicateKeyError, KeyPath

if TYPE_CHECKING:
    from miniapp_sync.definition.loader import _Lines, _Parsed

try:
    from yaml import CSafeLoader as _BaseLoader

    _LIBYAML = True
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

    _LIBYAML = False

_MERGE_TAG: Final = "tag:yaml.org,2002:merge"
_STR_TAG: Final = "tag:yaml.org,2002:str"
_COLLECTIONS: Final = (yaml.MappingNode, yaml.SequenceNode)


def _children(node: Any) -> list[Any] | None:
    """Return a YAML node's children (keys and values), or None for a scalar."""
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else None


class _YamlLoader(_BaseLoader):
    """A safe loader that also records key positions and refuses duplicate mapping keys."""

    def index(self, root: yaml.Node) -> dict[KeyPath, tuple[int, int]]:
        """Return the 1-based (line, col) of ``root`` and of every key and sequence item under it."""
        positions: dict[KeyPath, tuple[int, int]] = {(): (root.start_mark.line + 1, root.start_mark.column + 1)}
        seen: set[int] = set()
        stack: list[tuple[yaml.Node, KeyPath]] = [(root, ())]
        while stack:
            node, path = stack.pop()
            if id(node) in seen:  # walk an anchored node once, however often aliases repeat it
                continue
            seen.add(id(node))
            children: list[tuple[yaml.Node, KeyPath]] = []
            if isinstance(node, yaml.SequenceNode):
                for i, item in enumerate(node.value):
                    positions[(*path, i)] = (item.start_mark.line + 1, item.start_mark.column + 1)
                    if isinstance(item, _COLLECTIONS):
                        children.append((item, (*path, i)))
            elif isinstance(node, yaml.MappingNode):
                firsts: dict[Any, int] = {}
                for key_node, value_node in node.value:
                    if key_node.tag == _STR_TAG:
                        key = key_node.value  # what construction gives, without its cost
                    elif key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                        continue  # merge keys override on purpose; construction refuses collection keys
                    else:
                        key = self.construct_object(key_node)
                    mark = key_node.start_mark
                    if key in firsts:
                        raise DuplicateKeyError(key, mark.index, firsts[key], path)
                    firsts[key] = mark.index
                    if isinstance(key, str | int):
                        positions[(*path, key)] = (mark.line + 1, mark.column + 1)
                        if isinstance(value_node, _COLLECTIONS):
                            children.append((value_node, (*path, key)))
            # Document order, so an anchored node is indexed where it is written, not at an alias
            # (an alias is the same node, marked where the anchor is).
            stack.extend(reversed(children))
        return positions


def parse_yaml(text: str, lines: _Lines, *, empty: str) -> _Parsed:
    """Parse a YAML definition: its data, the (line, col) of every key path, and its top value's offset."""
    loader = _YamlLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise lines.error(empty)
        check_shape(root, _children, root.start_mark.index)
        positions = loader.index(root)
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        message = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context and exc.context.startswith("expected"):
            message = f"{exc.context}, {exc.problem}"  # reads as one sentence: "expected X, but found Y"
        elif exc.problem and exc.context:
            where = ""
            if exc.context_mark is not None:
                where = " at {}:{}".format(*lines.position(exc.context_mark.index))
            message += f" ({exc.context}{where})"
        mark = exc.problem_mark or exc.context_mark
        raise lines.error(message, None if mark is None else mark.index) from None
    except yaml.reader.ReaderError as exc:
        offset = exc.position
        if _LIBYAML:  # libyaml reads the text as UTF-8 and reports a byte offset here (marks count characters)
            offset = len(text.encode()[:offset].decode(errors="ignore"))
        raise lines.error(f"character U+{exc.character:04X} is not allowed in YAML", offset) from None
    except yaml.YAMLError as exc:
        raise lines.error(str(exc)) from None
    finally:
        loader.dispose()
    return data, positions, root.start_mark.index
