"""The optimistic mapping function never decides a value: it gives what the careful path gives, or falls back.

Each record is mapped twice: by the mapper as compiled, and by the same rules compiled with the
optimistic functions (the record's and the line items') switched off, which is the careful path
alone. Records are Salla-shaped, then mutated where an optimistic read could go wrong: keys
removed, values replaced by null, empty text, numbers, booleans, lists, objects.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miniapp_sync import compile_plan, load_definition, vocabulary
from miniapp_sync.definition.rules import parse_rule
from miniapp_sync.errors import MappingError
from miniapp_sync.mapping import compiler
from miniapp_sync.mapping.compiler import Mapper
from miniapp_sync.mapping.records import MappedRecord

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "salla" / "definition.json5"
PRODUCT: dict[str, Any] = {
    "id": 100000001,
    "name": "  Product عود  ",
    "sku": "SKU-1",
    "description": "<p>Fine oud.</p>",
    "type": "product",
    "status": "sale",
    "price": {"amount": 120.5, "currency": "SAR"},
    "regular_price": {"amount": 150, "currency": "SAR"},
    "sale_price": {"amount": 0, "currency": "SAR"},
    "cost_price": "60.25",
    "quantity": 7,
    "unlimited_quantity": False,
    "is_available": True,
    "mpn": None,
    "gtin": None,
    "weight": "2.5",
    "weight_type": "kg",
    "main_image": "https://cdn.example.com/p/1.jpg",
    "thumbnail": "https://cdn.example.com/p/1-t.jpg",
    "urls": {"customer": "https://store.example.com/p1", "admin": "https://s.salla.sa/products"},
    "updated_at": "2024-03-12 14:25:00",
}
ITEM: dict[str, Any] = {
    "id": 70000004,
    "name": "Coffee - 500 g",
    "sku": "COF-1",
    "quantity": 2,
    "currency": "SAR",
    "weight": 0.5,
    "amounts": {
        "price_without_tax": {"amount": 40.5, "currency": "SAR"},
        "total_discount": {"amount": 0, "currency": "SAR"},
        "tax": {"percent": "15.00", "amount": {"amount": 6.08, "currency": "SAR"}},
        "total": {"amount": 81, "currency": "SAR"},
    },
    "notes": "",
    "product": {"id": 1700000001, "type": "product", "sku": "COF-1", "name": "Coffee"},
}
DAY = {"date": "2024-03-12 14:05:11.000000", "timezone_type": 3, "timezone": "Asia/Riyadh"}
ORDER: dict[str, Any] = {
    "id": 1900000001,
    "reference_id": 20001,
    "urls": {"customer": "https://salla.sa/s/order/1", "admin": "https://s.salla.sa/orders/order/1"},
    "date": DAY,
    "updated_at": DAY,
    "status": {"id": 1473353380, "name": "In Progress", "slug": "in_progress"},
    "payment_method": "mada",
    "currency": "SAR",
    "amounts": {
        "sub_total": {"amount": 121, "currency": "SAR"},
        "shipping_cost": {"amount": 25, "currency": "SAR"},
        "tax": {"percent": "15.00", "amount": {"amount": 18.15, "currency": "SAR"}},
        "discounts": [{"title": "Welcome", "type": "percentage", "code": "WELCOME10", "discount": "5.00"}],
        "total": {"amount": 164.15, "currency": "SAR"},
    },
    "customer": {"id": 1589632014, "first_name": "Noura", "last_name": "Al-Qahtani"},
    "items": [ITEM, {**ITEM, "id": 70000005, "sku": ""}],
}
CUSTOMER: dict[str, Any] = {
    "id": 1589632014,
    "first_name": "Noura",
    "last_name": "Al-Qahtani",
    "email": "noura@example.com",
    "mobile": 555123456,
    "mobile_code": "+966",
    "avatar": "https://cdn.example.com/a.png",
    "birthday": {"date": "1990-01-02 00:00:00.000000", "timezone_type": 3, "timezone": "Asia/Riyadh"},
    "city": "Riyadh",
    "country": "SA",
    "country_code": "SA",
    "updated_at": DAY,
}
CART: dict[str, Any] = {
    "id": 5501,
    "status": "active",
    "total": {"amount": 164.15, "currency": "SAR"},
    "subtotal": {"amount": 139.15, "currency": "SAR"},
    "total_discount": {"amount": 0, "currency": "SAR"},
    # Cart items carry amounts in some responses only: the second item takes the careful path.
    "items": [{"id": 1, "product_id": 17, "quantity": 2, "amounts": {"total": {"amount": 81}}}, {"id": 2}],
    "checkout_url": "https://store.example.com/checkout/5501",
    "customer": {"id": 1589632014, "name": " Noura "},
    "coupon": {"code": "WELCOME10"},
    "created_at": DAY,
    "updated_at": DAY,
}
BASES = {"products": PRODUCT, "orders": ORDER, "customers": CUSTOMER, "abandonedCarts": CART}
# What an optimistic read could take for the value it expects.
REPLACEMENTS = [None, "", "  ", "text", 0, 1, -2.5, True, False, [], [{}], [1, "a"], {}, {"amount": "x"}, {"id": None}]
DELETE = object()


def careful_only(record: Any) -> Any:
    raise compiler.Fallback


def compiled(careful: bool) -> dict[str, Mapper]:
    """Compile the example's mappers; ``careful`` switches every optimistic function off."""
    with pytest.MonkeyPatch.context() as patch:
        if careful:
            patch.setattr(Mapper, "optimistic_list_function", lambda self: careful_only)
        definition = load_definition(EXAMPLE, vocabulary=vocabulary())
        mappers = {name: plan.mapper for name, plan in compile_plan(definition).resources.items()}
    if careful:
        for mapper in mappers.values():
            mapper._optimistic = mapper._hopeful = careful_only  # _hopeful: what a rested mapper tries again
    return mappers


OPTIMISTIC, CAREFUL = compiled(careful=False), compiled(careful=True)


def places(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Yield the path of every value inside ``value``, objects' keys and lists' indexes."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield (*path, key)
            yield from places(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield (*path, index)
            yield from places(inner, (*path, index))


def mutate(record: Any, path: tuple[Any, ...], replacement: Any) -> None:
    parent = record
    for step in path[:-1]:
        try:
            parent = parent[step]
        except (KeyError, IndexError, TypeError):  # an earlier mutation changed the way here
            return
    key = path[-1]
    if not ((isinstance(parent, dict) and isinstance(key, str)) or (isinstance(parent, list) and isinstance(key, int))):
        return  # an earlier mutation put another kind of value here
    if replacement is DELETE:
        if isinstance(parent, dict):
            parent.pop(key, None)
        elif key < len(parent):
            del parent[key]
    elif isinstance(parent, dict) or key < len(parent):
        parent[key] = copy.deepcopy(replacement)


def both(resource: str, record: Any) -> tuple[MappedRecord, MappedRecord]:
    return OPTIMISTIC[resource](copy.deepcopy(record)), CAREFUL[resource](copy.deepcopy(record))


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, Any]:
    resource = draw(st.sampled_from(sorted(BASES)))
    record = copy.deepcopy(BASES[resource])
    paths = list(places(record))
    for _ in range(draw(st.integers(1, 4))):
        mutate(record, draw(st.sampled_from(paths)), draw(st.sampled_from([DELETE, *REPLACEMENTS])))
    return resource, record


@settings(max_examples=600, deadline=None)
@given(case=mutated())
def test_mutated_records_map_as_the_careful_path_maps_them(case: tuple[str, Any]) -> None:
    resource, record = case
    optimistic, careful = both(resource, record)
    assert repr(optimistic) == repr(careful)


@pytest.mark.parametrize("resource", sorted(BASES))
def test_every_single_change_of_a_record_maps_as_the_careful_path_maps_it(resource: str) -> None:
    base = BASES[resource]
    fresh = compiled(careful=False)[resource]  # the shared ones may be resting after many fallbacks
    assert not fresh(base).rejected
    assert fresh._fallbacks == 0  # the untouched record takes the optimistic path
    for path in places(base):
        for replacement in [DELETE, *REPLACEMENTS]:
            record = copy.deepcopy(base)
            mutate(record, path, replacement)
            optimistic, careful = both(resource, record)
            assert repr(optimistic) == repr(careful), (path, replacement)


@pytest.mark.parametrize("record", [None, [], "text", 5, [PRODUCT], {}])
def test_a_record_that_is_no_object_maps_as_the_careful_path_maps_it(record: Any) -> None:
    for resource in BASES:
        optimistic, careful = both(resource, record)
        assert repr(optimistic) == repr(careful)


def test_a_missing_required_field_still_rejects_the_record_naming_it() -> None:
    record = {key: value for key, value in PRODUCT.items() if key != "name"}
    result = OPTIMISTIC["products"](record)
    assert result.rejected
    assert [problem.field for problem in result.problems] == ["name"]


def test_map_strict_gives_the_careful_data_or_the_same_error() -> None:
    rules = {"code": parse_rule({"path": "id", "transform": "toString"}), "qty": parse_rule("quantity")}
    mapper = Mapper.compile(rules)
    reference = Mapper.compile(rules)
    reference._optimistic = reference._hopeful = careful_only
    for record in [ITEM, {"id": 1}, {"id": None, "quantity": "2"}, {"quantity": 2}, None, {"id": [1]}]:
        outcomes = []
        for each in (mapper, reference):
            try:
                outcomes.append(repr(each.map_strict(copy.deepcopy(record))))
            except MappingError as exc:
                outcomes.append(f"error: {exc}")
        assert outcomes[0] == outcomes[1], record


def test_a_mapper_rests_its_optimistic_function_after_many_fallbacks_then_tries_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(compiler, "FALLBACK_LIMIT", 3)
    monkeypatch.setattr(compiler, "RESTING", 5)
    mapper = compiled(careful=False)["products"]
    bad = {key: value for key, value in PRODUCT.items() if key != "mpn"}  # a primary path missing
    hopeful = mapper._optimistic

    def resting_after(records: list[dict[str, Any]]) -> list[bool]:
        states = []
        for record in records:
            assert repr(mapper(record)) == repr(CAREFUL["products"](record))  # whichever path maps it
            states.append(mapper._optimistic is compiler._careful_only)
        return states

    # The third fallback rests it: careful only.
    assert resting_after([bad, PRODUCT, bad, PRODUCT, bad]) == [False, False, False, False, True]
    # After 5 records, good or bad, it tries the optimistic function again: a long-running serve is
    # not left on the slow path for good by one bad burst.
    assert resting_after([PRODUCT, bad, PRODUCT, PRODUCT, PRODUCT]) == [True, True, True, True, False]
    assert mapper._optimistic is hopeful
    mapper(PRODUCT)
    assert mapper._fallbacks == 0  # it maps optimistically again, counting from 0
