"""Loading definition text: JSON, JSON5 / JS modules and YAML, positions, and every way it can fail."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from miniapp_sync.definition.loader import Source, load_file, parse_text
from miniapp_sync.errors import DefinitionSyntaxError

DATA = Path(__file__).parent / "data"
SAMPLES = sorted(DATA.glob("loader_sample.*"))


def syntax_error(text: str, filename: str = "<string>", **kwargs: Any) -> DefinitionSyntaxError:
    with pytest.raises(DefinitionSyntaxError) as info:
        parse_text(text, filename, **kwargs)
    return info.value


# --- every format, the same document ----------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.suffix)
def test_every_format_loads_the_same_document(path: Path) -> None:
    expected = json.loads((DATA / "loader_sample.json").read_text())
    document, source = load_file(path)
    assert document == expected
    assert source.filename == str(path)
    assert source.locate(("sync", "handlers", "order.created", "operation")) is not None


def test_samples_cover_every_format() -> None:
    assert {p.suffix for p in SAMPLES} == {".json", ".json5", ".ts", ".cjs", ".yaml"}


@pytest.mark.parametrize(
    ("filename", "text"),
    [
        ("a.json", '{"a": 1}'),
        ("a.JSON5", "{a: 1,}"),
        ("a.js", "export default {a: 1}"),
        ("a.mjs", "export default {a: 1}"),
        ("a.ts", "export default {a: 1}"),
        ("a.yaml", "a: 1"),
        ("a.yml", "a: 1"),
        ("a.conf", "{a: 1, /* JSON5 for an unknown suffix */}"),
        ("<string>", "{a: 1}"),
    ],
)
def test_format_follows_the_suffix(filename: str, text: str) -> None:
    assert parse_text(text, filename)[0] == {"a": 1}


def test_explicit_format_overrides_the_suffix() -> None:
    assert parse_text("a: 1", "definition.json", format="yaml")[0] == {"a": 1}
    assert "JSON5" in str(syntax_error("{a: 1}", "definition.json5", format="json"))


def test_unknown_format_is_a_usage_error() -> None:
    with pytest.raises(ValueError, match="unknown definition format 'toml'"):
        parse_text("a = 1", format="toml")


# --- JSON5 ------------------------------------------------------------------------------------


def test_json5_features() -> None:
    text = r"""
    // line comment
    /* block
       comment */
    {
      unquoted: 1,
      'single': 'it\'s',
      "double": "say \"hi\"",
      'order.created': 'dotted key',
      $dollar_key: true,
      été: 'unicode identifier',
      \u0061bc: 'escaped identifier',
      hex: 0x1F,
      negativeHex: -0xff,
      plus: +1,
      leadingDot: .5,
      trailingDot: 5.,
      exponent: 1e3,
      infinity: -Infinity,
      continued: 'one \
two',
      nested: { list: [1, 2, 3,], empty: {}, },
      trailing: null,
    }
    """
    document, _ = parse_text(text, "app.json5")
    assert document == {
        "unquoted": 1,
        "single": "it's",
        "double": 'say "hi"',
        "order.created": "dotted key",
        "$dollar_key": True,
        "été": "unicode identifier",
        "abc": "escaped identifier",
        "hex": 31,
        "negativeHex": -255,
        "plus": 1,
        "leadingDot": 0.5,
        "trailingDot": 5.0,
        "exponent": 1000.0,
        "infinity": -math.inf,
        "continued": "one two",
        "nested": {"list": [1, 2, 3], "empty": {}},
        "trailing": None,
    }


def test_json5_positions_skip_comments_around_colons() -> None:
    text = "{\n  spaced /* c */ : /* d */ 'v',\n  list: [ /* e */ 1, // f\n    2 ],\n}"
    document, source = parse_text(text)
    assert document == {"spaced": "v", "list": [1, 2]}
    assert source.positions == {
        (): (1, 1),
        ("spaced",): (2, 3),
        ("list",): (3, 3),
        ("list", 0): (3, 19),
        ("list", 1): (4, 5),
    }


def test_json5_nan_is_accepted() -> None:
    assert math.isnan(parse_text("{n: NaN}")[0]["n"])


# --- JS modules -------------------------------------------------------------------------------

EXPECTED_JS = {"ns": "demo", "brace": "}", "open": "{"}
BODY = "{\n  ns: 'demo', // a comment with a {\n  brace: '}', /* } */\n  open: \"{\",\n}"


@pytest.mark.parametrize(
    "text",
    [
        f"export default {BODY};",
        f"export default {BODY}",
        f"export default {BODY} satisfies MiniApp;\n",
        f"export default {BODY} as const;",
        f"module.exports = {BODY};",
        f"'use strict';\nmodule.exports = {BODY};",
        f"exports.default = {BODY};",
        f"const app = {BODY};\nexport default app;",
        f"const app: MiniApp = {BODY};\n\nexport default app\n",
        f"let app = {BODY}\nmodule.exports = app",
        f"// @ts-check\nimport type {{ MiniApp }} from './types';\nexport default {BODY} satisfies MiniApp;",
        f"/** @type {{import('./types').MiniApp}} */\nexport default {BODY};",
        f"const banner = `}} {{ ${{not}} interpolated`;\nconst other = '{{';\nexport default {BODY};",
        f"type Shape = {{ ns: string }};\ninterface Other {{ a: number }}\nexport default {BODY} satisfies Shape;",
        f"function helper() {{ return {{ ns: 'wrong' }}; }}\nexport default {BODY};",
        f"const defaults = {{ ns: 'wrong' }};\nexport default {BODY};",
        f"export default {BODY};\nconst after = {{ ns: 'wrong' }};",
        f"const first = {BODY};\nconst second = {{ ns: 'wrong' }};",
        f"const other = {{ ns: 'wrong' }};\nconst app = {BODY};\nexport default app;",
        f"export const app = {BODY};",
    ],
)
def test_js_module_yields_the_exported_object(text: str) -> None:
    document, source = parse_text(text, "definition.ts")
    assert document == EXPECTED_JS
    line = text[: text.index(BODY)].count("\n") + 1
    assert source.positions[("ns",)] == (line + 1, 3)


def test_js_positions_and_errors_are_relative_to_the_whole_file() -> None:
    text = "// header\nimport type { X } from 'x';\n\nexport default {\n  a: 1,\n  b: @,\n};\n"
    error = syntax_error(text, "definition.ts")
    assert (error.line, error.column) == (6, 6)
    assert error.source_line == "  b: @,"
    assert "expected a value, found '@'" in str(error)


def test_js_without_an_object_literal_is_an_error() -> None:
    error = syntax_error("export default defineApp;\n", "definition.js")
    assert "no object literal found" in str(error)
    assert error.line is None


# --- duplicate keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "text", "fragment", "where"),
    [
        ("a.json", '{\n  "ns": "a",\n  "x": 1,\n  "ns": "b"\n}', "duplicate key 'ns' at 4:3 (first at 2:3)", (4, 3)),
        ("a.json", '{"a": {"b": 1, "b": 2}}', "duplicate key 'b' at 1:16 (first at 1:8) in a", (1, 16)),
        ("a.json", '{"a": "x", "\\u0061": "y"}', "duplicate key 'a' at 1:12 (first at 1:2)", (1, 12)),
        ("a.json5", "{\n  ns: 'a',\n  'ns': 'b',\n}", "duplicate key 'ns' at 3:3 (first at 2:3)", (3, 3)),
        (
            "a.json5",
            "{list: [{k: 1}, {k: 1, /* c */ k: 2}]}",
            "duplicate key 'k' at 1:32 (first at 1:18) in list[1]",
            (1, 32),
        ),
        ("a.json5", "{'order.created': 1, \"order.created\": 2}", "duplicate key 'order.created' at 1:22", (1, 22)),
        (
            "a.ts",
            "// x\nexport default {\n  a: { b: 1,\n    b: 2 },\n};",
            "duplicate key 'b' at 4:5 (first at 3:8) in a",
            (4, 5),
        ),
        ("a.yaml", "ns: a\nsync:\n  x: 1\nns: b\n", "duplicate key 'ns' at 4:1 (first at 1:1)", (4, 1)),
        (
            "a.yaml",
            "sync:\n  resources:\n    a: 1\n    'a': 2\n",
            "duplicate key 'a' at 4:5 (first at 3:5) in sync.resources",
            (4, 5),
        ),
        ("a.yaml", "list:\n  - {k: 1, k: 2}\n", "duplicate key 'k' at 2:12 (first at 2:6) in list[0]", (2, 12)),
    ],
)
def test_duplicate_keys_are_an_error(filename: str, text: str, fragment: str, where: tuple[int, int]) -> None:
    error = syntax_error(text, filename)
    assert fragment in str(error)
    assert (error.line, error.column) == where


def test_yaml_merge_keys_are_not_duplicates() -> None:
    text = "base: &base {a: 1, b: 2}\nderived:\n  <<: *base\n  b: 3\n"
    document, source = parse_text(text, "a.yaml")
    assert document["derived"] == {"a": 1, "b": 3}
    assert source.positions[("derived", "b")] == (4, 3)


def test_yaml_aliases_are_walked_once() -> None:
    lines = ["a0: &a0 {k: [1, 2]}"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 8)]
    document, source = parse_text("\n".join(lines), "a.yaml")
    assert document["a1"] == [{"k": [1, 2]}] * 3
    assert source.positions[("a0", "k", 1)] == (1, 17)
    # An alias is the anchored node itself, so it is located where the anchor is written.
    assert source.locate(("a7", 0, 0, 0)) == "a.yaml:7:5"


# --- broken inputs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "text", "fragment", "line", "column"),
    [
        ("a.json", '{"a": 1,}', "expecting property name enclosed in double quotes", 1, 9),
        ("a.json", '{"a": 1,}', "need JSON5", 1, 9),
        ("a.json", '{\n  "a": 1\n  "b": 2\n}', "expecting ',' delimiter", 3, 3),
        ("a.json", "{'a': 1}", "need JSON5", 1, 2),
        ("a.json", '{"a": [1, 2,]}', "need JSON5", 1, 13),
        ("a.json", '{"a": }', "expecting value", 1, 7),
        ("a.json", '{"a": // no\n 1}', "need JSON5", 1, 7),
        ("a.json", '{"a": NaN}', "NaN is not allowed in JSON", 1, 7),
        ("a.json", '{"a": "NaN", "b": -Infinity}', "-Infinity is not allowed in JSON", 1, 19),
        ("a.json", '{"a": 1} x', "extra data", 1, 10),
        ("a.json", '{"a": "x', "unterminated string", 1, 7),
        ("a.json5", "{a: 1,,}", "stray ','", 1, 7),
        ("a.json5", "{\n  a: 1\n  b: 2\n}", "expected ',' or '}', found 'b'", 3, 3),
        ("a.json5", "{a: }", "expected a value, found '}'", 1, 5),
        ("a.json5", "{\n  a: 'x\n}", "unclosed string: no closing quote on its line", 2, 6),
        ("a.json5", "{\n  a: 1,", "unclosed object: the text ends before its closing bracket", 1, 1),
        ("a.json5", "{a: [1, 2}", "expected ',' or ']', found '}'", 1, 10),
        ("a.json5", "{a: 1} x", "unexpected 'x' after the top-level value", 1, 8),
        ("a.json5", "{a: 1} // fine\n  /* also */ ]", "unexpected ']' after the top-level value", 2, 14),
        ("a.json5", "{a: /* open", "unclosed comment", 1, 5),
        ("a.json5", "{a: '\\x4'}", 'expected a hexadecimal digit, found "\'"', 1, 9),
        ("a.json5", "{a: tru}", "expected 'e', found '}'", 1, 8),
        ("a.ts", "export default {\n  a: [1, 2},\n};", "expected ']' to close '[', found '}' (opened at 2:6)", 2, 11),
        ("a.ts", "export default {\n  a: 1,\n", "unclosed '{': the text ends before its '}'", 1, 16),
        ("a.ts", "export default {a: 1}}", "unmatched '}'", 1, 22),
        ("a.js", "const note = `open\nexport default {};", "unterminated template string", 1, 14),
        ("a.js", 'export default {a: "x};', "unterminated string", 1, 20),
        ("a.js", "/* open\nexport default {};", "unterminated comment", 1, 1),
        ("a.yaml", "a: 1\n b: 2\n", "mapping values are not allowed", 2, 3),
        ("a.yaml", "a: [1\nb: 2\n", "did not find expected ',' or ']' (while parsing a flow sequence at 1:4)", 2, 2),
        ("a.yaml", "a: 1\n---\nb: 2\n", "expected a single document in the stream, but found another document", 2, 1),
        ("a.yaml", "a:\n\tb: 1\n", "found character that cannot start any token", 2, 1),
        ("a.yaml", "é: \x07\n", "character U+0007 is not allowed in YAML", 1, 4),
        ("a.yaml", "a: !!python/object:os.system {}\n", "could not determine a constructor", 1, 4),
        ("a.yaml", "? [a, b]\n: 1\n", "found unhashable key", 1, 3),
        ("a.yaml", 'a: "x\n', "found unexpected end of stream", 2, 1),
    ],
)
def test_broken_input_is_located(filename: str, text: str, fragment: str, line: int, column: int) -> None:
    error = syntax_error(text, filename)
    if fragment == "expecting value":
        assert "JSON5" not in str(error)
    assert fragment in str(error)
    assert (error.filename, error.line, error.column) == (filename, line, column)
    assert error.source_line == re.split(r"\r\n?|\n", text)[line - 1]
    assert str(error).startswith(f"{filename}:{line}:{column}: ")


@pytest.mark.parametrize(
    ("filename", "text", "found", "where"),
    [
        ("a.json", "[1, 2]", "a list", (1, 1)),
        ("a.json", '\n  "text"', "a string", (2, 3)),
        ("a.json5", "// c\n42", "a number", (2, 1)),
        ("a.json5", "null", "null", (1, 1)),
        ("a.js", "'just a string'", "a string", (1, 1)),
        ("a.yaml", "- a\n- b\n", "a list", (1, 1)),
        ("a.yaml", "# c\ntrue\n", "a boolean", (2, 1)),
        ("a.yaml", "---\n", "null", (2, 1)),
    ],
)
def test_top_level_must_be_an_object(filename: str, text: str, found: str, where: tuple[int, int]) -> None:
    error = syntax_error(text, filename)
    assert f"expected an object at the top level, found {found}" in str(error)
    assert (error.line, error.column) == where


@pytest.mark.parametrize(
    ("filename", "text"),
    [
        ("a.json", ""),
        ("a.json", "  \n\t\n"),
        ("a.json5", ""),
        ("a.json5", "// nothing\n/* here */\n"),
        ("a.ts", "// @ts-check\n"),
        ("a.yaml", ""),
        ("a.yaml", "# only a comment\n"),
    ],
)
def test_empty_definition_is_an_error(filename: str, text: str) -> None:
    error = syntax_error(text, filename)
    assert "the definition is empty" in str(error)
    assert error.line is None


@pytest.mark.parametrize("filename", ["a.json", "a.json5", "a.yaml"])
def test_deep_nesting_is_an_error_not_a_crash(filename: str) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    error = syntax_error(f'{{"a": {deep}}}', filename)
    assert re.search(r"nested deeper than 200 levels|nesting (level|depth)", str(error))


# --- files ------------------------------------------------------------------------------------


def test_utf8_bom_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "app.json"
    path.write_bytes(b'\xef\xbb\xbf{\n  "a": 1\n}')
    document, source = load_file(path)
    assert document == {"a": 1}
    assert source.positions[("a",)] == (2, 3)


def test_non_utf8_bytes_are_located(tmp_path: Path) -> None:
    path = tmp_path / "app.json5"
    path.write_bytes("{\n  name: 'caf\u00e9 \xff',\n}".encode("latin-1"))
    with pytest.raises(DefinitionSyntaxError, match="invalid UTF-8: byte 0xe9") as info:
        load_file(path)
    assert (info.value.line, info.value.column) == (2, 13)
    assert info.value.source_line is not None
    assert info.value.source_line.startswith("  name: 'caf")


def test_utf16_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "app.json"
    path.write_text('{"a": 1}', encoding="utf-16")
    with pytest.raises(DefinitionSyntaxError, match="UTF-16; save it as UTF-8"):
        load_file(path)


def test_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DefinitionSyntaxError, match="no such file") as info:
        load_file(tmp_path / "missing.json")
    assert info.value.line is None
    assert info.value.filename == str(tmp_path / "missing.json")
    with pytest.raises(DefinitionSyntaxError, match="it is a directory"):
        load_file(tmp_path)


def test_crlf_line_endings_count_one_line() -> None:
    _, source = parse_text('{\r\n  "a": {\r\n    "b": [10, 20]\r\n  }\r\n}', "a.json")
    assert source.positions[("a", "b", 1)] == (3, 15)


# --- Source -----------------------------------------------------------------------------------


def test_locate_a_nested_key_and_an_array_element() -> None:
    text = 'export default {\n  sync: {\n    resources: [\n      { id: 1 },\n      "second",\n    ],\n  },\n};'
    _, source = parse_text(text, "app.ts")
    assert source.locate(("sync", "resources")) == "app.ts:3:5"
    assert source.locate(("sync", "resources", 0, "id")) == "app.ts:4:9"
    assert source.locate(("sync", "resources", 1)) == "app.ts:5:7"
    assert source.locate(("sync", "resources", 7, "missing")) == "app.ts:3:5"
    assert source.locate(("nowhere",)) == "app.ts:1:16"
    assert source.locate(()) == "app.ts:1:16"


def test_locate_in_yaml() -> None:
    _, source = parse_text("sync:\n  resources:\n    - id: 1\n    - second\n", "app.yaml")
    assert source.locate(("sync", "resources", 0, "id")) == "app.yaml:3:7"
    assert source.locate(("sync", "resources", 1)) == "app.yaml:4:7"


def test_locate_without_positions_is_none() -> None:
    assert Source("x.json", "", {}).locate(("a",)) is None


def test_positions_are_read_only() -> None:
    _, source = parse_text('{"a": 1}')
    with pytest.raises(TypeError):
        source.positions[("b",)] = (1, 1)  # type: ignore[index]


# --- round trips ------------------------------------------------------------------------------

KEYS = st.text(max_size=8) | st.sampled_from(
    ["order.created", "a.b.c", "it's", 'say "hi"', "back\\slash", "é", "😀", "$ref", "_x", "x y", "1a", "true", "null"]
)
STRINGS = st.text(max_size=12) | st.sampled_from(
    ["it's", '"quoted"', "line\nbreak", "crlf\r\n", "back\\slash", "}{", "// not a comment", "/* nor this */", "\u2028"]
)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | STRINGS
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4), max_leaves=16
)
DOCUMENTS = st.dictionaries(KEYS, VALUES, max_size=6)
IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")


def js_string(text: str) -> str:
    escapes = {"'": "\\'", "\\": "\\\\", "\n": "\\n", "\r": "\\r"}
    out = (escapes.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 or c in "\u2028\u2029" else c) for c in text)
    return "'" + "".join(out) + "'"


def js_key(key: str) -> str:
    return key if IDENTIFIER.match(key) else js_string(key)


def to_js(value: Any, indent: str = "") -> str:
    """Serialise like a hand-written JS module: unquoted keys, single quotes, trailing commas, hex."""
    inner = indent + "  "
    if isinstance(value, dict):
        items = "".join(f"{inner}{js_key(k)}: {to_js(v, inner)},\n" for k, v in value.items())
        return "{ /* {object} */\n" + items + indent + "}"
    if isinstance(value, list):
        return "[" + "".join(f"{to_js(v, inner)}, " for v in value) + "]"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return hex(value) if value % 2 else str(value)
    if isinstance(value, float):
        return repr(value)
    return js_string(value)


def all_paths(value: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield (*prefix, key)
        yield from all_paths(child, (*prefix, key))


def text_at(source: Source, path: tuple[str | int, ...]) -> str:
    line, column = source.positions[path]
    return source.text.split("\n")[line - 1][column - 1 :]


@settings(max_examples=100, deadline=None)
@given(DOCUMENTS)
def test_json_round_trip(document: dict[str, Any]) -> None:
    loaded, source = parse_text(json.dumps(document, ensure_ascii=False, indent=1), "a.json")
    assert loaded == document
    assert set(all_paths(document)) | {()} == set(source.positions)
    for path in all_paths(document):
        if isinstance(path[-1], str):
            assert text_at(source, path).startswith(json.dumps(path[-1], ensure_ascii=False) + ":")


@settings(max_examples=100, deadline=None)
@given(DOCUMENTS)
def test_yaml_round_trip(document: dict[str, Any]) -> None:
    loaded, source = parse_text(yaml.safe_dump(document), "a.yaml")
    assert loaded == document
    assert set(all_paths(document)) | {()} == set(source.positions)


@settings(max_examples=100, deadline=None)
@given(DOCUMENTS)
def test_js_module_round_trip(document: dict[str, Any]) -> None:
    header = "// generated\nimport type { MiniApp } from './types';\n\n"
    text = f"{header}export default {to_js(document)} satisfies MiniApp;\n"
    loaded, source = parse_text(text, "a.ts")
    assert loaded == document
    assert set(all_paths(document)) | {()} == set(source.positions)
    for path in all_paths(document):
        if isinstance(path[-1], str):
            assert text_at(source, path).startswith(js_key(path[-1]) + ":")


def test_a_long_minified_line_is_cut_around_the_error() -> None:
    text = '{"a": [' + ", ".join(str(i) for i in range(2000)) + ", }"
    with pytest.raises(DefinitionSyntaxError) as caught:
        parse_text(text, "min.json")
    shown, caret = str(caught.value).splitlines()[1:3]
    assert len(shown) < 120
    assert shown.strip().startswith("…")
    assert caret.index("^") < len(shown)


# --- the guide's fragment form and non-object files (D1) ---------------------------------------


def test_the_guides_fragment_form_is_read_as_if_wrapped_in_braces() -> None:
    text = "// from the guide\nsync: {\n  baseUrl: 'https://api.example.com/v2',\n  headers: { A: 'b' },\n},\n"
    document, source = parse_text(text, "sync.js")
    assert document == {"sync": {"baseUrl": "https://api.example.com/v2", "headers": {"A": "b"}}}
    assert source.locate(("sync", "headers", "A")) == "sync.js:4:14"


def test_a_fragment_with_a_syntax_error_points_at_the_text_as_written() -> None:
    error = syntax_error("sync: {\n  baseUrl: 'x'\n  headers: {},\n},\n", "sync.js")
    assert (error.line, error.column) == (3, 3)


@pytest.mark.parametrize(
    ("filename", "text", "hint"),
    [
        ("a.json", "[1, 2]", "wrap the text in { … }"),
        ("a.json", '"sync": {"baseUrl": "x"},', "a bare property list is not JSON: wrap the text in { … }"),
        ("a.json5", "'text'", "wrap the text in { … } (or write `export default { … }`)"),
        ("a.yaml", "- a\n- b", "write its keys at the top level"),
        ("a.js", "const x = 1;\nfoo();", "or the guide's property form `sync: {…},`"),
    ],
)
def test_a_file_that_holds_no_object_says_how_to_wrap_the_text(filename: str, text: str, hint: str) -> None:
    assert hint in str(syntax_error(text, filename))


# --- input bounds: billion laughs, depth, size, devices (D1; issue #12 item 6) ------------------

BILLION_LAUGHS = "\n".join(
    ["a: &a [" + ",".join(["lol"] * 9) + "]"]
    + [f"{k}: &{k} [{','.join([f'*{prev}'] * 9)}]" for prev, k in zip("abcdefgh", "bcdefghi", strict=True)]
)


def test_billion_laughs_yaml_is_refused_with_a_clear_error() -> None:
    assert len(BILLION_LAUGHS) < 400  # 9**9 (387 million) strings once expanded
    error = syntax_error(BILLION_LAUGHS, "laughs.yaml")
    assert "YAML aliases expand the definition past 100,000 nodes" in str(error)
    assert error.line == 1


def test_billion_laughs_yaml_makes_validate_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(BILLION_LAUGHS)
    # A subprocess with a generous timeout only as a safety net (unbounded, it ran for minutes):
    # the assertion is on the error and the exit code.
    done = subprocess.run(
        [sys.executable, "-m", "miniapp_sync", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    assert done.returncode == 2
    assert "YAML aliases expand the definition past 100,000 nodes" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_yaml_alias_that_contains_itself_is_refused() -> None:
    assert "would be infinite" in str(syntax_error("a: &a [1, *a]", "a.yaml"))


@pytest.mark.parametrize("filename", ["a.json", "a.json5", "a.yaml"])
def test_nesting_deeper_than_200_is_refused_and_200_is_not(filename: str) -> None:
    def nested(depth: int) -> str:  # the top-level object is level 1
        return '{"a": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"

    parse_text(nested(200), filename)
    assert "nested deeper than 200 levels" in str(syntax_error(nested(201), filename))


def test_yaml_aliases_deeper_than_200_once_expanded_are_refused() -> None:
    inner = "[" * 150 + "]" * 150
    text = f"a: &a {inner}\nb: {'[' * 60}*a{']' * 60}"  # 150 + 60 levels: only the expansion is too deep
    assert "nested deeper than 200 levels" in str(syntax_error(text, "a.yaml"))


def test_a_file_over_10_mib_is_refused_without_parsing_it(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(b'{"a": "' + b"x" * (10 * 2**20) + b'"}')
    with pytest.raises(DefinitionSyntaxError, match="larger than 10 MiB"):
        load_file(path)


def test_a_device_is_refused_not_read() -> None:  # /dev/null: a device that cannot flood a test run
    with pytest.raises(DefinitionSyntaxError, match="not a regular file"):
        load_file("/dev/null")
