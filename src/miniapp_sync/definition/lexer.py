"""Lexical scans over definition text: locate the object in JS module code, index keys.

Neither scan decodes values (pyjson5, json and PyYAML do that); they walk tokens so the
loader can point at the right ``line:col`` and refuse duplicate keys, which every
decoder silently collapses. Offsets here are 0-based indices into the whole text.
"""

from __future__ import annotations

import json
import re
from typing import Final

import pyjson5

KeyPath = tuple[str | int, ...]


class ScanError(Exception):
    """Malformed text found by a scan; ``offset`` (and ``opened``) locate it. Caught by the loader."""

    def __init__(self, message: str, offset: int | None, *, opened: int | None = None) -> None:
        self.message = message
        self.offset = offset
        self.opened = opened
        super().__init__(message)


class NoObjectError(ScanError):
    """JS module code holds no object literal where a definition can be."""


class DuplicateKeyError(ScanError):
    """An object holds the same key twice; ``first`` is where it appeared before."""

    def __init__(self, key: object, offset: int, first: int, path: KeyPath) -> None:
        self.key = key
        self.first = first
        self.repeat = offset
        self.path = path
        super().__init__(f"duplicate key {key!r}", offset)


# Strings are an unrolled loop (a plain run, then escape + plain run) so long strings stay out
# of per-character alternation; an escaped CRLF is one JSON5 line continuation.
_COMMENT: Final = r"//[^\n\r\u2028\u2029]*|/\*[\s\S]*?\*/"
_STRINGS: Final = (
    r'"[^"\\\n\r]*(?:\\(?:\r\n|[\s\S])[^"\\\n\r]*)*"'
    r"|'[^'\\\n\r]*(?:\\(?:\r\n|[\s\S])[^'\\\n\r]*)*'"
)
_TEMPLATE: Final = r"`[^`\\]*(?:\\[\s\S][^`\\]*)*`"

_BLANK: Final = rf"(?:\s|\ufeff|{_COMMENT})*"
_WORD: Final = r"[^\s{}\[\]:,\"'/\ufeff]+"  # identifiers, numbers, true/false/null, Infinity, NaN

# One match per key (with its scalar value, if any), bracket, or scalar that stands alone
# (an array element); whitespace, commas and comments are consumed before it. This keeps a
# 200 KB definition to ~10k matches and leaves the grammar to the decoder that has already
# accepted the text. The explicit end keeps trailing blanks from being rescanned from
# every offset (quadratic).
_J5_TOKEN: Final = re.compile(
    rf"(?:[\s,\ufeff]++|{_COMMENT})*+"
    rf"(?:(?P<key>(?>{_STRINGS}|{_WORD})){_BLANK}:\s*(?:{_STRINGS}|{_WORD})?"
    rf"|(?P<bracket>[{{}}\[\]])|(?P<value>{_STRINGS}|{_WORD})|(?P<end>\Z))"
)
_NON_JSON_WORD: Final = re.compile(rf"{_STRINGS}|(?P<word>-?Infinity|NaN)")

_JS_PARTS: Final = (
    f"(?P<comment>{_COMMENT})|(?P<string>{_STRINGS}|{_TEMPLATE})"
    r"|(?P<open>[{\[(])|(?P<close>[}\])])|(?P<bad>/\*|[\"'`])"
)
_JS_TOKEN: Final = re.compile(_JS_PARTS + r"|(?P<word>[\w$]+)|(?P<punct>\S)")
# Inside brackets only nesting matters: one match per bracket, with the strings, comments and
# code before it consumed possessively in C.
_JS_NESTED: Final = re.compile(
    rf"(?:[^\"'`/{{}}\[\]()]++|{_STRINGS}|{_TEMPLATE}|{_COMMENT}|/(?![/*]))*+"
    r"(?:(?P<open>[{\[(])|(?P<close>[}\])])|(?P<bad>/\*|[\"'`])|\Z)"
)
_COMMENT_RE: Final = re.compile(_COMMENT)
_CLOSER: Final = {"{": "}", "[": "]", "(": ")"}
_IDENTIFIER: Final = re.compile(r"[^\W\d][\w$]*\Z|\$[\w$]*\Z")
_NOT_NAMES: Final = frozenset({"function", "class", "async", "new", "await", "typeof", "void", "null", "undefined"})
_STATEMENT_ENDS: Final = frozenset({";", "{}"})


def _unterminated(token: str, offset: int) -> ScanError:
    what = {"/*": "comment", "`": "template string"}.get(token, "string")
    return ScanError(f"unterminated {what}", offset)


def _skip_group(text: str, offset: int) -> int:
    """Return the offset just past the bracket that closes the one at ``offset``."""
    stack = [(text[offset], offset)]
    pos = offset + 1
    while stack:
        m = _JS_NESTED.match(text, pos)
        if m is None or not m.lastgroup:
            opener, where = stack[-1]
            raise ScanError(f"unclosed {opener!r}: the text ends before its {_CLOSER[opener]!r}", where)
        pos = m.end()
        kind = m.lastgroup
        token = m.group(kind)
        if kind == "open":
            stack.append((token, m.start(kind)))
        elif kind == "close":
            opener, where = stack.pop()
            if _CLOSER[opener] != token:
                raise ScanError(
                    f"expected {_CLOSER[opener]!r} to close {opener!r}, found {token!r}", m.start(kind), opened=where
                )
        else:
            raise _unterminated(token, m.start(kind))
    return pos


def _classify(tokens: list[str]) -> tuple[bool, str | None] | None:
    """Say whether a ``{`` after ``tokens`` is an object literal: (exported, assigned name), or None."""
    if tokens[-2:] == ["export", "default"]:
        return True, None
    if not tokens or tokens[-1] != "=":
        return None  # a block, class or interface body, or named imports/exports
    if tokens[-4:-1] in (["module", ".", "exports"], ["exports", ".", "default"]):
        return True, None
    for i in range(len(tokens) - 2, max(-1, len(tokens) - 40), -1):
        token = tokens[i]
        if token in _STATEMENT_ENDS:
            break
        if token in ("const", "let", "var") and i + 1 < len(tokens):
            return False, tokens[i + 1]
        if token == "type" and (i == 0 or tokens[i - 1] in ("export", "declare", *_STATEMENT_ENDS)):
            return None  # a TypeScript object type, not a value
    if len(tokens) >= 2 and _IDENTIFIER.match(tokens[-2]):
        return False, tokens[-2]
    return False, None


def js_object_span(text: str) -> tuple[int, int] | None:
    """Return (start, end) of the definition object in JS module code; None for a bare JSON5 document.

    The object is the one after ``export default`` or ``module.exports =``, else the one
    assigned to the name ``export default`` names, else the first top-level object literal.
    Strings, template strings and comments are understood; regular-expression literals
    are not (definition modules have no use for them outside the object).
    """
    tokens: list[str] = []  # top-level tokens; a bracketed group stands as one token ("{}", "()")
    candidates: list[tuple[int, int, bool, str | None]] = []
    exported_name: str | None = None
    pos = 0
    while (m := _JS_TOKEN.search(text, pos)) is not None:
        kind, token, offset, pos = m.lastgroup, m.group(), m.start(), m.end()
        if kind == "comment":
            continue
        if not tokens and token in ("{", "["):
            return None  # a bare JSON5 document: pyjson5 judges all of it, trailing text included
        if kind == "bad":
            raise _unterminated(token, offset)
        if kind == "close":
            raise ScanError(f"unmatched {token!r}", offset)
        if kind == "open":
            pos = _skip_group(text, offset)
            if token == "{" and (found := _classify(tokens)) is not None:
                candidates.append((offset, pos, *found))
            token += _CLOSER[token]
        elif (
            kind == "word"
            and (tokens[-2:] == ["export", "default"] or tokens[-4:] == ["module", ".", "exports", "="])
            and token not in _NOT_NAMES
            and _IDENTIFIER.match(token)
        ):
            exported_name = token
        tokens.append(token)
    if not tokens:
        return None
    chosen = next((c for c in candidates if c[2]), None)
    if chosen is None and exported_name is not None:
        chosen = next((c for c in candidates if c[3] == exported_name), None)
    if chosen is None and candidates:
        chosen = candidates[0]
    if chosen is None:
        raise NoObjectError(
            "no object literal found: expected `export default {…}`, `module.exports = {…}`, a bare `{…}` "
            "or the guide's property form `sync: {…},`",
            None,
        )
    return chosen[0], chosen[1]


_PROPERTY: Final = re.compile(rf"(?:{_STRINGS}|[^\W\d][\w$]*|\$[\w$]*)\s*:")


def is_property_list(text: str) -> bool:
    """Return True when the text starts (after blanks and comments) with ``key:``, as the guide's snippets do."""
    return _PROPERTY.match(text, skip_blank(text, 0)) is not None


def skip_blank(text: str, offset: int) -> int:
    """Return the offset of the first character at or after ``offset`` outside whitespace and comments."""
    while True:
        while offset < len(text) and (text[offset].isspace() or text[offset] == "\ufeff"):
            offset += 1
        m = _COMMENT_RE.match(text, offset)
        if m is None:
            return offset
        offset = m.end()


def _decode_key(token: str, strict: bool) -> str:
    if token[0] in "\"'":
        if "\\" not in token:
            return token[1:-1]
        # json and pyjson5 disagree on lone surrogates; decode with the parser that read the value.
        key: str = json.loads(token) if strict else pyjson5.decode(token)
        return key
    if "\\" not in token:
        return token
    (escaped,) = pyjson5.decode(f"{{{token}:0}}")  # an identifier spelled with \uXXXX escapes
    return str(escaped)


def index_keys(text: str, start: int = 0, end: int | None = None, *, strict: bool = False) -> dict[KeyPath, int]:
    """Map the path of every key and array element in ``text[start:end]`` to its offset; refuse duplicates.

    The text must already have been accepted by a JSON (``strict``) or JSON5 decoder.
    """
    offsets: dict[KeyPath, int] = {}
    # One frame per open container: its path, then the keys seen so far (an object) or
    # the number of elements so far (an array).
    stack: list[tuple[KeyPath, dict[str, int] | list[int] | None]] = []
    path: KeyPath = ()
    seen: dict[str, int] | list[int] | None = None
    key = ""
    for m in _J5_TOKEN.finditer(text, start, len(text) if end is None else end):
        kind = m.lastgroup or "end"  # every match captures exactly one named group
        if kind == "end":
            break
        if kind == "key":
            offset = m.start(kind)
            key = _decode_key(m.group(kind), strict)
            if not isinstance(seen, dict):
                raise ScanError("a key outside an object", offset)  # unreachable for decoder-accepted text
            first = seen.get(key)
            if first is not None:
                raise DuplicateKeyError(key, offset, first, path)
            seen[key] = offset
            offsets[(*path, key)] = offset
            continue
        bracket = m.group("bracket")
        if bracket in ("}", "]"):
            path, seen = stack.pop()
            continue
        if seen is None:
            element: KeyPath = ()
            offsets[element] = m.start(kind)
        elif isinstance(seen, list):
            element = (*path, seen[0])
            offsets[element] = m.start(kind)
            seen[0] += 1
        else:
            element = (*path, key)  # a container or a value after a comment: the key holds its position
        if bracket is not None:
            stack.append((path, seen))
            path, seen = element, ({} if bracket == "{" else [0])
    return offsets


def find_non_json_word(text: str) -> int | None:
    """Return the offset of the first ``NaN`` or ``Infinity`` outside strings (``json.loads`` accepts them)."""
    for m in _NON_JSON_WORD.finditer(text):
        if m.group("word") is not None:
            return m.start()
    return None
