"""Raw mapping rules parse into typed Rule objects (D12), or say what does not fit."""

from __future__ import annotations

from typing import Any

import pytest

from miniapp_sync.definition.rules import MISSING, Rule, RuleError, TransformStep, parse_rule


def test_string_is_a_path_rule() -> None:
    assert parse_rule("data.id") == Rule(kind="path", paths=("data.id",))


def test_path_with_transform_list_applies_left_to_right() -> None:
    rule = parse_rule({"path": "email", "transform": ["trim", "lowercase"]})
    assert [s.name for s in rule.transforms] == ["trim", "lowercase"]
    assert rule.path == "email"


def test_coalesce_over_paths() -> None:
    rule = parse_rule({"paths": ["price.amount", "regular_price.amount"], "transform": "coalesce"})
    assert rule.kind == "paths"
    assert rule.paths == ("price.amount", "regular_price.amount")
    assert rule.transforms == (TransformStep("coalesce"),)


def test_literal_and_default() -> None:
    assert parse_rule({"value": {"a": [1]}}).value == {"a": (1,)}
    rule = parse_rule({"path": "currency", "default": "SAR"})
    assert rule.default == "SAR"
    assert parse_rule({"path": "currency"}).default is MISSING


def test_compute_carries_fn_and_args() -> None:
    rule = parse_rule({"transform": "compute", "fn": "lookup", "path": "status", "args": {"table": {"a": "b"}}})
    (step,) = rule.transforms
    assert step.fn == "lookup"
    assert step.options["args"]["table"]["a"] == "b"


def test_compute_without_path_reads_the_whole_record() -> None:
    rule = parse_rule({"transform": "compute", "fn": "fullName"})
    assert rule.kind == "compute"
    assert rule.paths == ()


def test_options_reach_every_step_and_step_options_win() -> None:
    rule = parse_rule({"path": "codes", "transform": [{"name": "joinCodes", "separator": ";"}], "separator": ","})
    assert rule.transforms[0].options["separator"] == ";"
    assert rule.options["separator"] == ","


@pytest.mark.parametrize(
    ("raw", "fragment", "where"),
    [
        ("", "must not be empty", ""),
        ([1, 2], "must be a path string, a literal number, boolean or null, or an object", ""),
        ({"path": "a", "paths": ["b"]}, "either 'path' or 'paths'", "paths"),
        ({"paths": []}, "non-empty list", "paths"),
        ({"path": 3}, "'path' must be a non-empty string", "path"),
        ({"transform": "compute"}, "needs 'fn'", "fn"),
        ({"path": "a", "fn": "x"}, "only used with transform 'compute'", "fn"),
        ({"path": "a", "transform": "compute", "fn": "x", "args": [1]}, "'args' must be an object", "args"),
        ({"path": "a", "transform": [1]}, "a transform must be a name", "transform[0]"),
        ({"value": 1, "path": "a"}, "cannot also have 'path'", "path"),
        ({"transform": "toString"}, "needs 'path', 'paths', 'value'", ""),
    ],
)
def test_bad_rules_say_what_does_not_fit(raw: Any, fragment: str, where: str) -> None:
    with pytest.raises(RuleError, match=fragment) as caught:
        parse_rule(raw)
    assert caught.value.where == where


def test_rules_are_immutable() -> None:
    rule = parse_rule({"value": {"a": 1}})
    with pytest.raises(TypeError):
        rule.value["a"] = 2
