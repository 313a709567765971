"""The RFC 9535 JSONPath Compliance Test Suite, run through ``compile_path``.

``cts.json`` lives in the shared tree beside the repository (``<repo>/../shared``), wherever the
repository is cloned.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonpath
import pytest

from miniapp_sync.definition.rules import MISSING
from miniapp_sync.errors import PathSyntaxError
from miniapp_sync.mapping.paths import compile_path

CTS_FILE = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "jsonpath-cts" / "cts.json"
if not CTS_FILE.is_file():  # fail loudly: a silently skipped compliance suite proves nothing
    raise FileNotFoundError(f"JSONPath compliance suite not found at {CTS_FILE}")

CASES: list[dict[str, Any]] = json.loads(CTS_FILE.read_text(encoding="utf-8"))["tests"]
VALID = [case for case in CASES if not case.get("invalid_selector")]
INVALID = [case for case in CASES if case.get("invalid_selector")]

# The stock library, not our environment: the reference the fast path must agree with.
LIBRARY = jsonpath.JSONPathEnvironment(strict=True)


def same(left: Any, right: Any) -> bool:
    """Compare JSON values without Python's 1 == 1.0 == True conflation."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same(left[key], right[key]) for key in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


def test_suite_is_complete() -> None:
    assert len(CASES) == 703
    assert len(INVALID) == 247


@pytest.mark.parametrize("case", INVALID, ids=[case["name"] for case in INVALID])
def test_invalid_selector_is_rejected_with_a_position(case: dict[str, Any]) -> None:
    with pytest.raises(PathSyntaxError) as caught:
        compile_path(case["selector"])
    position = caught.value.position
    assert position is not None
    assert 0 <= position <= len(case["selector"])


@pytest.mark.parametrize("case", VALID, ids=[case["name"] for case in VALID])
def test_valid_selector_selects_the_expected_values(case: dict[str, Any]) -> None:
    values = compile_path(case["selector"]).query(case["document"])

    if "result" in case:
        assert same(values, case["result"])
    else:
        assert any(same(values, result) for result in case["results"])


FAST = [case for case in VALID if compile_path(case["selector"]).fast]


def test_fast_path_covers_the_plain_shapes_of_the_suite() -> None:
    assert len(FAST) >= 50
    assert all(compile_path(case["selector"]).singular for case in FAST)


@pytest.mark.parametrize("case", FAST, ids=[case["name"] for case in FAST])
def test_fast_path_agrees_with_the_library(case: dict[str, Any]) -> None:
    compiled = compile_path(case["selector"])
    expected = LIBRARY.compile(case["selector"]).findall(case["document"])

    assert same(compiled.query(case["document"]), expected)
    if expected:
        assert same(compiled.get(case["document"]), expected[0])
    else:
        assert compiled.get(case["document"]) is MISSING


def test_fast_path_agrees_with_the_library_on_every_suite_document() -> None:
    documents = [case["document"] for case in VALID]
    for case in FAST:
        compiled = compile_path(case["selector"])
        reference = LIBRARY.compile(case["selector"])
        for document in documents:
            assert same(compiled.query(document), reference.findall(document)), (case["name"], document)
