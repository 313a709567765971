"""Compiled mappers: missing paths leave fields out, problems name field/path/value, rejects are whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miniapp_sync.definition.content_types import content_type
from miniapp_sync.definition.rules import parse_rule
from miniapp_sync.errors import MappingError
from miniapp_sync.mapping.compiler import Mapper
from miniapp_sync.mapping.functions import FunctionRegistry


def mapper(rules: dict[str, Any], type_name: str | None = None, functions: FunctionRegistry | None = None) -> Mapper:
    parsed = {k: parse_rule(v) for k, v in rules.items()}
    return Mapper.compile(parsed, functions=functions, target=content_type(type_name) if type_name else None)


PRODUCT_RULES: dict[str, Any] = {
    "code": {"path": "id", "transform": "toString"},
    "name": "name",
    "unitPrice": {"paths": ["price.amount", "regular_price.amount"], "transform": "coalesce"},
    "currency": {"path": "price.currency", "default": "SAR"},
    "source": {"value": "salla"},
    "sku": {"path": "sku", "transform": ["trim", "lowercase"]},
}


def test_maps_paths_transforms_coalesce_defaults_and_literals() -> None:
    record = {"id": 7, "name": "Oud", "price": {"amount": None}, "regular_price": {"amount": 120}, "sku": " AB-1 "}
    result = mapper(PRODUCT_RULES, "core:product")(record)
    assert not result.rejected
    assert result.data == {
        "code": "7",
        "name": "Oud",
        "unitPrice": 120,
        "currency": "SAR",
        "source": "salla",
        "sku": "ab-1",
    }


def test_a_missing_path_leaves_the_field_out_so_updates_never_wipe() -> None:
    result = mapper({"code": "id", "status": "status.name"})({"id": "1"})
    assert result.data == {"code": "1"}
    assert "status" not in result.data


def test_null_is_a_value_but_default_replaces_it() -> None:
    rules = {"code": "id", "note": "note", "qty": {"path": "qty", "default": 0}}
    assert mapper(rules)({"id": "1", "note": None, "qty": None}).data == {"code": "1", "note": None, "qty": 0}


def test_missing_required_field_rejects_the_record_with_field_and_path() -> None:
    result = mapper(PRODUCT_RULES, "core:product")({"id": 9, "price": {"amount": 5}})
    assert result.rejected
    (problem,) = result.problems
    assert problem.field == "name"
    assert problem.path == "name"
    assert "required field of core:product is missing" in problem.render()


def test_empty_required_field_rejects_too() -> None:
    result = mapper({"code": "id"}, "core:customer")({"id": ""})
    assert result.rejected
    assert "is empty" in result.problems[0].message


def test_a_failing_compute_function_becomes_a_problem_naming_field_path_and_value() -> None:
    functions = FunctionRegistry()

    def explode(value: Any) -> Any:
        raise ValueError("boom")

    functions.register("explode", explode)
    rules = {"code": "id", "name": {"path": "title", "transform": "compute", "fn": "explode"}}
    result = mapper(rules, functions=functions)({"id": 1, "title": "x" * 500})
    assert result.rejected
    (problem,) = result.problems
    assert problem.field == "name"
    assert problem.path == "title"
    assert "explode" in problem.message
    assert problem.value is not None
    assert len(problem.value) <= 60  # a preview, never the whole value
    assert result.data == {"code": 1}


def test_compute_without_path_sees_the_whole_record() -> None:
    rules = {"code": "id", "customerName": {"transform": "compute", "fn": "fullName"}}
    result = mapper(rules)({"id": 1, "first_name": "Sara", "last_name": "Ali"})
    assert result.data["customerName"] == "Sara Ali"


def test_paths_without_coalesce_pass_a_list_with_nulls_to_compute() -> None:
    functions = FunctionRegistry()
    functions.register("pair", lambda value: list(value))
    rules = {"code": "id", "both": {"paths": ["a", "b"], "transform": "compute", "fn": "pair"}}
    assert mapper(rules, functions=functions)({"id": 1, "a": 2}).data["both"] == [2, None]


def test_map_items_with_item_mapping_override() -> None:
    rules = {
        "code": "id",
        "items": {"path": "lines", "transform": "mapItems", "itemMapping": {"code": "ref", "quantity": "n"}},
    }
    result = mapper(rules)({"id": 1, "lines": [{"ref": "a", "n": 2}, {"ref": "b", "n": 1}]})
    assert result.data["items"] == [{"code": "a", "quantity": 2}, {"code": "b", "quantity": 1}]


def test_jsonpath_rules_select_from_the_webhook_body() -> None:
    rules = {"code": "$.data.id", "skus": "$.data.items[*].sku", "first": "$.data.items[0].sku"}
    body = {"data": {"id": 5, "items": [{"sku": "a"}, {"sku": "b"}]}}
    assert mapper(rules)(body).data == {"code": 5, "skus": ["a", "b"], "first": "a"}


def test_a_bad_path_fails_compilation_naming_the_field() -> None:
    with pytest.raises(MappingError, match="field 'name'"):
        mapper({"code": "id", "name": "a..b"})


def test_map_strict_raises_on_any_problem() -> None:
    with pytest.raises(MappingError, match="name"):
        mapper(PRODUCT_RULES, "core:product").map_strict({"id": 1})


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["id", "name", "price", "amount", "sku"]), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(record=JSON)
def test_any_record_maps_without_raising(record: Any) -> None:
    rules = dict(PRODUCT_RULES)
    rules["items"] = {"path": "price", "transform": "mapItems"}
    rules["when"] = {"path": "amount", "transform": "toISODate"}
    result = mapper(rules, "core:product")(record)
    assert isinstance(result.data, dict)
    if result.rejected:
        assert result.problems


def test_example_resources_compile(tmp_path: Path) -> None:
    # Compilation is once per definition: the same mapper object serves every record.
    product = mapper(PRODUCT_RULES, "core:product")
    assert product({"id": 1, "name": "a"}).data["code"] == "1"
    assert product({"id": 2, "name": "b"}).data["code"] == "2"


def test_a_non_string_literal_rule_is_the_value_itself_and_a_string_stays_a_path() -> None:
    record = {"salla": "a path", "id": 7}
    mapped = mapper({"code": "id", "platform": "salla", "weight": 42, "active": True, "note": None})(record)
    assert mapped.data == {"code": 7, "platform": "a path", "weight": 42, "active": True, "note": None}
