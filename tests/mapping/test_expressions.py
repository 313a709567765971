"""The compiler's inline code against the reference: the transforms called one by one, per field.

Differential tests: each inline expression agrees with the transform it stands for on generated
values, and a compiled mapper covering every rule kind the compiler writes code for agrees with a
plain interpreter of the same rules (paths read by their getters, steps by their built
transforms) on generated records, also where a rule fails: the same fields are rejected.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miniapp_sync.definition.rules import MISSING, Rule, TransformStep, parse_rule, thaw
from miniapp_sync.errors import MappingError
from miniapp_sync.mapping.compiler import Mapper
from miniapp_sync.mapping.expressions import step_expression
from miniapp_sync.mapping.functions import FunctionRegistry
from miniapp_sync.mapping.paths import compile_path
from miniapp_sync.mapping.transforms import build_transform, coalesce

TEXT = st.text(alphabet=" \t-+.,0123456789٠١٢٣٤٥e£$SARabcTRUEfalsyon/:", max_size=12)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    # Drawn often on purpose: the inline tests must send these to the transform, or agree with it.
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 2.0, 2.5, 1e21, True, False, 0, 1]),
    TEXT,
    st.sampled_from(["", " ", "sale", "hidden", "  12.50 ", "1,234", "2024-03-01 10:00:00", "Jun 26 2022", "١٢٣"]),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["amount", "code", "a", "b"]), inner),
    max_leaves=6,
)


def same(left: Any, right: Any) -> bool:
    """Equal values of the same type (True is no 1), nan equal to nan, in containers too."""
    if type(left) is not type(right):
        return False
    if isinstance(left, float) and math.isnan(left):
        return math.isnan(right)
    if isinstance(left, (list, tuple)):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same(left[k], right[k]) for k in left)
    return bool(left == right)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("toString", {}),
        ("trim", {}),
        ("lowercase", {}),
        ("toNumberOrNull", {}),
        ("toInteger", {}),
        ("toBoolean", {}),
        ("joinCodes", {}),
        ("toISODate", {"timezone": "Asia/Riyadh"}),
        ("compute", {"args": {"table": {"sale": "active", "1": "one", "hidden": None}, "default": "x"}}),
    ],
)
@given(value=SCALARS | JSON)
@settings(max_examples=300)
def test_an_inline_expression_gives_what_its_transform_gives(name: str, options: dict[str, Any], value: Any) -> None:
    step = TransformStep(name=name, fn="lookup" if name == "compute" else None, options=MappingProxyType(options))
    functions = FunctionRegistry()
    transform = build_transform(step, functions=functions)
    names: dict[str, Any] = {}
    fast, field, may_be_missing = step_expression(step, "t", transform, names, functions)
    expected = transform(value)
    for expression in (fast, field):
        assert same(eval(expression, names, {"v": value}), expected), (expression, value)
    assert not may_be_missing


@pytest.mark.parametrize("fn", ["sallaStatus", "discountTotal"])
@given(
    value=SCALARS
    | JSON
    | st.lists(st.fixed_dictionaries({}, optional={"discount": SCALARS, "amount": SCALARS}), max_size=2)
    | st.fixed_dictionaries({}, optional={"slug": SCALARS, "name": SCALARS})
)
@settings(max_examples=300)
def test_an_inline_compute_function_gives_what_it_gives_called(fn: str, value: Any) -> None:
    step = TransformStep(name="compute", fn=fn, options=MappingProxyType({}))
    functions = FunctionRegistry()
    transform = build_transform(step, functions=functions)
    names: dict[str, Any] = {}
    fast, field, may_be_missing = step_expression(step, "t", transform, names, functions)
    assert fast != "tc(v)"  # inlined, not a plain call
    try:
        expected: Any = transform(value)
    except Exception as exc:  # a failure fails the inline code too; the per-field one words it the same
        with pytest.raises(exc.__cause__.__class__ if exc.__cause__ else type(exc)):  # unworded there
            eval(fast, names, {"v": value})
        with pytest.raises(type(exc)):
            eval(field, names, {"v": value})
        return
    for expression in (fast, field):
        assert same(eval(expression, names, {"v": value}), expected), (expression, value)
    assert not may_be_missing


def test_the_built_in_lookup_is_inlined_but_a_replaced_one_is_called() -> None:
    step = TransformStep(name="compute", fn="lookup", options=MappingProxyType({"args": {"table": {"a": 1}}}))
    functions = FunctionRegistry()
    assert ".get(v, " in step_expression(step, "t", build_transform(step, functions=functions), {}, functions)[0]
    functions.register("lookup", lambda value, table: "mine")
    fast, _, _ = step_expression(step, "t", build_transform(step, functions=functions), {}, functions)
    assert fast == "t(v)"


def maybe_missing(value: Any) -> Any:
    """A user function that leaves its field out for 'skip' and fails for 'boom'."""
    if value == "skip":
        return MISSING
    if value == "boom":
        raise ValueError("boom")
    return value


ITEM_RULES: dict[str, Any] = {
    "code": {"path": "id", "transform": "toString"},
    "productCode": {"path": "product.id", "transform": "toString"},
    "sku": {"paths": ["sku", "product.sku"], "transform": "coalesce"},
    "quantity": {"path": "quantity", "transform": "toNumberOrNull"},
    "unitPrice": {"path": "amounts.price.amount", "transform": "toNumberOrNull"},
    "note": {"path": "note", "transform": "compute", "fn": "maybeMissing"},
    "currency": "currency",
}
RULES: dict[str, Any] = {
    "code": {"path": "id", "transform": "toString"},
    "name": {"path": "name", "transform": ["trim", "lowercase"]},
    "quantity": {"path": "quantity", "transform": "toInteger"},
    "unitPrice": {"paths": ["price.amount", "regular.amount"], "transform": ["coalesce", "toNumberOrNull"]},
    "salePrice": {"path": "sale.amount", "transform": "toNumberOrNull", "default": 0},
    "currency": {"paths": ["price.currency", "currency"], "transform": "coalesce", "default": "SAR"},
    "available": {"path": "available", "transform": "toBoolean"},
    "status": {
        "path": "status",
        "transform": "compute",
        "fn": "lookup",
        "args": {"table": {"sale": "active", "hidden": "disabled"}, "default": "active"},
    },
    "slug": {"path": "status", "transform": ["compute", "trim"], "fn": "sallaStatus"},
    "customerName": {"paths": ["customer.first", "customer.last"], "transform": "compute", "fn": "fullName"},
    "note": {"path": "note", "transform": ["compute", "toString"], "fn": "maybeMissing"},
    "updatedAt": {"path": "updated_at", "transform": "toISODate", "timezone": "Asia/Riyadh"},
    "codes": {"path": "discounts", "transform": "joinCodes"},
    "deep": {"path": "$.a.b"},
    "deepText": {"path": "$.a.code", "transform": ["toString", "trim"]},
    "indexed": {"path": "items[0].id"},
    "items": {"path": "items", "transform": "mapItems", "currency": "SAR", "itemMapping": ITEM_RULES},
    "count": {"transform": "compute", "fn": "count"},
    "source": {"value": "salla"},
}
ITEM = st.fixed_dictionaries(
    {},
    optional={
        "id": SCALARS,
        "product": st.fixed_dictionaries({}, optional={"id": SCALARS, "sku": SCALARS}) | SCALARS,
        "sku": SCALARS,
        "quantity": SCALARS,
        "amounts": st.fixed_dictionaries({"price": st.fixed_dictionaries({}, optional={"amount": SCALARS})}),
        "note": st.sampled_from(["skip", "ok", "ok", "ok", "boom"]),
        "currency": SCALARS,
    },
)
MONEY = st.fixed_dictionaries({}, optional={"amount": JSON, "currency": SCALARS}) | SCALARS
RECORD = st.fixed_dictionaries(
    {  # present in most records, so that their rules' inline code runs on every shape drawn
        "id": SCALARS,
        "price": MONEY,
        "status": st.sampled_from(["sale", "hidden", "out"]) | JSON,
        "customer": st.fixed_dictionaries({}, optional={"first": SCALARS, "last": SCALARS}) | SCALARS,
        "updated_at": st.sampled_from(["2024-03-01 10:00:00", "2024-03-01", "1714651391"]) | JSON,
        "items": st.lists(ITEM, min_size=1, max_size=4)
        | st.lists(ITEM | SCALARS, max_size=3)
        | st.dictionaries(st.sampled_from(["1", "2"]), ITEM)
        | SCALARS,
    },
    optional={
        "name": SCALARS,
        "quantity": SCALARS,
        "regular": MONEY,
        "sale": MONEY,
        "currency": SCALARS,
        "available": SCALARS,
        "note": st.sampled_from(["skip", "boom", "ok"]) | SCALARS,
        "discounts": st.lists(st.fixed_dictionaries({"code": SCALARS}) | SCALARS, max_size=3) | SCALARS,
        "a": st.fixed_dictionaries({}, optional={"b": JSON, "code": SCALARS}) | SCALARS,
    },
)


def functions() -> FunctionRegistry:
    registry = FunctionRegistry()
    registry.register("maybeMissing", maybe_missing)
    return registry


def interpret(rules: dict[str, Rule], record: Any, registry: FunctionRegistry) -> tuple[dict[str, Any], set[str]]:
    """Map a record rule by rule through getters and built transforms: the data and the fields that failed."""
    data: dict[str, Any] = {}
    failed = set()
    for name, rule in rules.items():
        try:
            value = _value(rule, record, registry)
        except Exception:
            failed.add(name)
            continue
        if value is not MISSING:
            data[name] = value
    return data, failed


def _value(rule: Rule, record: Any, registry: FunctionRegistry) -> Any:
    if rule.kind == "literal":
        return thaw(rule.value)
    steps = list(rule.transforms)
    if rule.kind == "path":
        value = compile_path(rule.paths[0]).get(record)
    elif rule.kind == "paths":
        values = [compile_path(path).get(record) for path in rule.paths]
        if steps and steps[0].name == "coalesce":
            value, steps = coalesce(values), steps[1:]
        else:
            value = [None if v is MISSING else v for v in values]
    else:
        value = record
    for step in steps:
        if value is not MISSING:
            value = build_transform(step, functions=registry, item_mapper=_item_mapper(step, registry))(value)
    if rule.default is not MISSING and (value is MISSING or value is None):
        value = thaw(rule.default)
    return value


def _item_mapper(step: TransformStep, registry: FunctionRegistry) -> Any:
    if "itemMapping" not in step.options:
        return None
    rules = {k: parse_rule(thaw(v)) for k, v in step.options["itemMapping"].items()}

    def item(record: Any) -> dict[str, Any]:
        data, failed = interpret(rules, record, registry)
        if failed:
            raise MappingError(f"failed: {sorted(failed)}")
        return data

    return item


@given(record=RECORD | JSON)
@settings(max_examples=400, deadline=None)
def test_the_compiled_mapper_maps_as_the_rules_read_one_by_one(record: Any) -> None:
    registry = functions()
    rules = {k: parse_rule(v) for k, v in RULES.items()}
    result = Mapper.compile(rules, functions=registry)(record)
    data, failed = interpret(rules, record, registry)
    assert {p.field for p in result.problems} == failed
    assert result.rejected == bool(failed)
    assert same(result.data, data)


def test_a_failing_line_item_is_named_by_field_and_index() -> None:
    rules = {k: parse_rule(v) for k, v in RULES.items()}
    result = Mapper.compile(rules, functions=functions())({"id": 1, "items": [{"id": 1}, {"id": 2, "note": "boom"}]})
    (problem,) = result.problems
    assert problem.field == "items"
    assert "mapItems: item [1]" in problem.message
    assert "compute function 'maybeMissing' failed" in problem.message
    assert result.data["code"] == "1"


def test_items_of_a_list_of_dicts_map_with_the_currency_filled_in() -> None:
    rules = {k: parse_rule(v) for k, v in RULES.items()}
    record = {"items": [{"id": 7, "product": {"id": 8}, "sku": "", "note": "skip"}, {"id": 9, "currency": "USD"}]}
    items = Mapper.compile(rules, functions=functions())(record).data["items"]
    assert items == [{"code": "7", "productCode": "8", "currency": "SAR"}, {"code": "9", "currency": "USD"}]


class Subclass(dict):  # type: ignore[type-arg]
    """A dict that is not exactly dict: the straight-line function's exact-class tests must not drop it."""


def _as_subclass(value: Any) -> Any:
    if isinstance(value, dict):
        return Subclass({k: _as_subclass(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_as_subclass(v) for v in value]
    return value


def _as_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _as_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_plain(v) for v in value]
    return value


@given(record=RECORD)
@settings(max_examples=200, deadline=None)
def test_dict_subclasses_map_as_the_plain_dicts_they_hold(record: dict[str, Any]) -> None:
    mapper = Mapper.compile({k: parse_rule(v) for k, v in RULES.items()}, functions=functions())
    plain, subclassed = mapper(record), mapper(_as_subclass(record))
    assert same(plain.data, _as_plain(subclassed.data))  # a value read whole stays the subclass it was
    assert {p.field for p in plain.problems} == {p.field for p in subclassed.problems}


def test_a_subclassed_record_reads_through_its_shared_objects() -> None:
    mapper = Mapper.compile({k: parse_rule(v) for k, v in RULES.items()}, functions=functions())
    record = _as_subclass({"id": 1, "price": {"amount": "12.50", "currency": "USD"}, "customer": {"first": "A"}})
    assert mapper._fast(record) == mapper._fast(dict(record, price=dict(record["price"]), customer={"first": "A"}))
    assert mapper(record).data["unitPrice"] == 12.5
    assert mapper(record).data["currency"] == "USD"
