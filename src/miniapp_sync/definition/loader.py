"""Read a definition file (JSON, JSON5 / a JS object literal, or YAML) into plain data (D1).

Besides the data, loading yields a :class:`Source`: the text and the ``line:col`` of every
key and array element, so later stages can point at ``file:line:col`` for a dotted path.
Syntax errors, duplicate keys and a top level that is not an object raise
:class:`~miniapp_sync.errors.DefinitionSyntaxError` with the offending line.
"""

from __future__ import annotations

import bisect
import codecs
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import pyjson5

from miniapp_sync.definition.bounds import MAX_BYTES, MAX_DEPTH, check_shape, data_children, read_bounded
from miniapp_sync.definition.lexer import (
    DuplicateKeyError,
    KeyPath,
    NoObjectError,
    ScanError,
    find_non_json_word,
    index_keys,
    is_property_list,
    js_object_span,
    skip_blank,
)
from miniapp_sync.errors import DefinitionSyntaxError

FORMATS: Final = ("json", "json5", "yaml")
_WRAP_HINT: Final = {
    "json": "; a definition is one object: wrap the text in { … }",
    "json5": "; a definition is one object: wrap the text in { … } (or write `export default { … }`)",
    "yaml": "; a definition is one mapping: write its keys at the top level (sync:, auth:, …)",
}
_SUFFIX_FORMATS: Final = {
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    **dict.fromkeys((".json5", ".js", ".mjs", ".cjs", ".ts", ".mts", ".cts"), "json5"),
}
_NEWLINE: Final = re.compile(r"\r\n?|\n")
_NEAR: Final = re.compile(r",? *(?:starting )?near (\d+)")
_PYJSON5_NAMES: Final = {
    "comma": "','",
    "colon": "':'",
    "JSON5Value": "a value",
    "IdentifierStart": "a key",
    "NumericLiteral": "number",
    "hexadecimal character": "a hexadecimal digit",
}
_JSON5_HINT: Final = " (comments, single quotes, unquoted keys and trailing commas need JSON5: use a .json5 file)"
_EMPTY: Final = "the definition is empty: no value found (only whitespace or comments)"

# What a format's parser returns: the data, (line, col) by key path, and the top-level value's offset.
_Parsed = tuple[Any, dict[KeyPath, tuple[int, int]], int | None]


@dataclass(frozen=True)
class Source:
    """The text a definition was loaded from, with the ``(line, col)`` of each key and array element."""

    filename: str
    text: str = field(repr=False)
    positions: Mapping[KeyPath, tuple[int, int]] = field(repr=False)

    def locate(self, path: KeyPath) -> str | None:
        """Return ``file:line:col`` of the deepest known prefix of ``path``, or None."""
        path = tuple(path)
        for size in range(len(path), -1, -1):
            found = self.positions.get(path[:size])
            if found is not None:
                return f"{self.filename}:{found[0]}:{found[1]}"
        return None


class _Lines:
    """Turn 0-based offsets into 1-based ``(line, col)`` and build errors that show the line."""

    def __init__(self, text: str, filename: str) -> None:
        self.text = text
        self.filename = filename
        self.starts = [0, *(m.end() for m in _NEWLINE.finditer(text))]

    def position(self, offset: int) -> tuple[int, int]:
        index = bisect.bisect_right(self.starts, offset) - 1
        return index + 1, offset - self.starts[index] + 1

    def error(self, message: str, offset: int | None = None) -> DefinitionSyntaxError:
        if offset is None:
            return DefinitionSyntaxError(message, filename=self.filename)
        line, column = self.position(min(max(offset, 0), len(self.text)))
        end = self.starts[line] if line < len(self.starts) else len(self.text)
        source_line = self.text[self.starts[line - 1] : end].rstrip("\r\n")
        return DefinitionSyntaxError(message, filename=self.filename, line=line, column=column, source_line=source_line)

    def parsed(self, data: Any, offsets: dict[KeyPath, int]) -> _Parsed:
        return data, {path: self.position(offset) for path, offset in offsets.items()}, offsets.get(())

    def scan_error(self, exc: ScanError) -> DefinitionSyntaxError:
        if isinstance(exc, DuplicateKeyError):
            line, column = self.position(exc.first)
            where = f" in {_dotted(exc.path)}" if exc.path else ""
            at = "{}:{}".format(*self.position(exc.repeat))
            return self.error(f"duplicate key {exc.key!r} at {at} (first at {line}:{column}){where}", exc.repeat)
        message = exc.message
        if exc.opened is not None:
            message += " (opened at {}:{})".format(*self.position(exc.opened))
        return self.error(message, exc.offset)


def _dotted(path: KeyPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _format_for(filename: str) -> str:
    return _SUFFIX_FORMATS.get(os.path.splitext(filename)[1].lower(), "json5")


class _NonJsonConstant(Exception):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NonJsonConstant(name)


def _parse_json(text: str, lines: _Lines) -> _Parsed:
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except _NonJsonConstant as exc:
        message = f"{exc} is not allowed in JSON (JSON5 and YAML accept it)"
        raise lines.error(message, find_non_json_word(text)) from None
    except json.JSONDecodeError as exc:
        message = exc.msg[:1].lower() + exc.msg[1:]
        char, before = text[exc.pos : exc.pos + 1], text[: exc.pos].rstrip()[-1:]
        if is_property_list(text):  # the guide's `"sync": { … },` pasted into a .json file
            message += " (a bare property list is not JSON: wrap the text in { … }, or save it as .json5 or .js)"
        elif exc.msg.startswith("Expecting property name") or char in ("'", "/") or (char == "]" and before == ","):
            message += _JSON5_HINT
        raise lines.error(message, exc.pos) from None
    return lines.parsed(data, index_keys(text, strict=True))


def _pyjson5_message(exc: Exception) -> str:
    raw = str(exc.args[0]) if exc.args else str(exc)
    text = _NEAR.sub("", raw)
    if text.startswith("Unclosed b'string'"):
        text += ": no closing quote on its line"
    elif text.startswith(("Unclosed b'object'", "Unclosed b'array'")):
        text += ": the text ends before its closing bracket"
    text = re.sub(r"b'([^']*)'", lambda m: _PYJSON5_NAMES.get(m[1], m[1]), text)
    text = re.sub(r"U\+([0-9a-fA-F]{4,6})", lambda m: repr(chr(int(m[1], 16))), text)
    return text[:1].lower() + text[1:]


def _parse_json5(text: str, lines: _Lines) -> _Parsed:
    if is_property_list(text):
        # The guide's own fragment form, `sync: { … },` (D1): read as if wrapped in { }. The
        # wrapped text is one character longer at the front, so its offsets are shifted back.
        data, offsets = _decode_json5("{" + text + "\n}", 0, None, lines, shift=-1)
        return lines.parsed(data, {path: max(offset - 1, 0) for path, offset in offsets.items()})
    try:
        span = js_object_span(text)
    except NoObjectError as exc:
        try:  # a bare scalar document deserves "expected an object", not "no object literal found"
            pyjson5.decode(text)
        except pyjson5.Json5Exception:
            raise exc from None
        span = None
    start, end = span if span is not None else (0, len(text))
    return lines.parsed(*_decode_json5(text, start, end, lines))


def _decode_json5(
    text: str, start: int, end: int | None, lines: _Lines, *, shift: int = 0
) -> tuple[Any, dict[KeyPath, int]]:
    """Decode ``text[start:end]``; errors point at ``offset + shift`` in the text the user wrote."""
    end = len(text) if end is None else end
    try:
        # One level more than allowed, so _check_shape refuses depth with the same words as for JSON.
        data = pyjson5.decode(text[start:end], maxdepth=MAX_DEPTH + 1)
    except pyjson5.Json5NestingTooDeep:
        raise lines.error(f"the definition is nested deeper than {MAX_DEPTH} levels", start + shift) from None
    except pyjson5.Json5Exception as exc:
        if isinstance(exc, pyjson5.Json5EOF) and "No JSON data" in str(exc):
            raise lines.error(_EMPTY) from None
        near = _NEAR.search(str(exc.args[0]) if exc.args else "")
        if near is None:
            raise lines.error(_pyjson5_message(exc)) from None
        # pyjson5 reports the offset just past the offending character (of the slice it was
        # given), and an unclosed comment from the "*" of its "/*".
        offset = start + max(int(near[1]) - (2 if "b'comment'" in str(exc.args[0]) else 1), 0)
        message = _pyjson5_message(exc)
        found = getattr(exc, "character", None)
        if isinstance(exc, pyjson5.Json5ExtraData):  # reported at the value's last character
            offset = skip_blank(text, offset + 1)
            message = f"unexpected {text[offset : offset + 1]!r} after the top-level value"
        elif isinstance(found, str) and (hit := text.find(found, offset, offset + 16)) >= 0:
            offset = hit  # inside a literal or an escape pyjson5 points at its start, not at the culprit
        raise lines.error(message, offset + shift) from None
    return data, index_keys(text, start, end)


def _parse_yaml(text: str, lines: _Lines) -> _Parsed:
    # PyYAML loads with the first YAML definition: JSON and JSON5 ones never need it.
    from miniapp_sync.definition.yaml_nodes import parse_yaml

    return parse_yaml(text, lines, empty=_EMPTY)


_PARSERS: Final = {"json": _parse_json, "json5": _parse_json5, "yaml": _parse_yaml}


def parse_text(text: str, filename: str = "<string>", *, format: str | None = None) -> tuple[Any, Source]:
    """Parse definition text (format from ``format`` or the filename's suffix) into data and its Source."""
    fmt = format or _format_for(filename)
    if fmt not in _PARSERS:
        raise ValueError(f"unknown definition format {fmt!r}; expected one of {', '.join(FORMATS)}")
    text = text.removeprefix("\ufeff")
    lines = _Lines(text, filename)
    if len(text) > MAX_BYTES:
        raise lines.error(f"the definition is larger than {MAX_BYTES // 2**20} MiB")
    if not text.strip():
        raise lines.error("the definition is empty")
    try:
        data, positions, root = _PARSERS[fmt](text, lines)
        if fmt != "yaml":  # YAML was measured on its nodes, before aliases were expanded
            check_shape(data, data_children, root)
    except ScanError as exc:
        raise lines.scan_error(exc) from None
    except RecursionError:
        raise lines.error(f"the definition is nested deeper than {MAX_DEPTH} levels") from None
    if not isinstance(data, dict):
        raise lines.error(f"expected an object at the top level, found {_kind(data)}{_WRAP_HINT[fmt]}", root)
    return data, Source(filename, text, MappingProxyType(positions))


def _decode(raw: bytes, filename: str) -> str:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DefinitionSyntaxError("the file is UTF-16; save it as UTF-8", filename=filename)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
        line_start = max(raw.rfind(b"\n", 0, exc.start) + 1, bom)
        line_end = raw.find(b"\n", exc.start)
        source_line = raw[line_start : None if line_end < 0 else line_end].decode("utf-8", "replace")
        raise DefinitionSyntaxError(
            f"invalid UTF-8: byte 0x{raw[exc.start]:02x} cannot be decoded (definitions must be UTF-8)",
            filename=filename,
            line=raw.count(b"\n", 0, exc.start) + 1,
            column=len(raw[line_start : exc.start].decode("utf-8", "replace")) + 1,
            source_line=source_line.rstrip("\r"),
        ) from None


def load_file(path: str | os.PathLike[str]) -> tuple[Any, Source]:
    """Read a UTF-8 definition file (a BOM is tolerated) and parse it by its suffix."""
    filename = os.fspath(path)
    try:
        raw = read_bounded(Path(filename))
    except FileNotFoundError:
        raise DefinitionSyntaxError("cannot read the definition: no such file", filename=filename) from None
    except IsADirectoryError:
        raise DefinitionSyntaxError("cannot read the definition: it is a directory", filename=filename) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise DefinitionSyntaxError(f"cannot read the definition: {reason}", filename=filename) from None
    return parse_text(_decode(raw, filename), filename)
