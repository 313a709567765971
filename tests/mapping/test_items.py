"""Line items: the four providers' shapes onto the standard fields, itemMapping, bad input."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miniapp_sync import compile_plan, load_definition, vocabulary
from miniapp_sync.definition.content_types import content_type
from miniapp_sync.definition.rules import MISSING, TransformStep, parse_rule
from miniapp_sync.errors import MappingError, TransformError
from miniapp_sync.mapping.compiler import Mapper
from miniapp_sync.mapping.functions import FunctionRegistry
from miniapp_sync.mapping.items import LINE_ITEM_FIELDS, MAX_ITEMS, map_items, standard_item
from miniapp_sync.mapping.transforms import build_transform

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "salla" / "definition.json5"
SALLA_ORDER_ITEM = {
    "id": 1410727063,
    "name": "قميص قطني",
    "sku": "SH-001",
    "quantity": 2,
    "currency": "SAR",
    "weight": 0.5,
    "weight_label": "0.5 كجم",
    "amounts": {
        "price_without_tax": {"amount": 100, "currency": "SAR"},
        "total_discount": {"amount": 0, "currency": "SAR"},
        "tax": {"percent": "15.00", "amount": {"amount": 30, "currency": "SAR"}},
        "total": {"amount": 230, "currency": "SAR"},
    },
    "notes": "",
    "product": {
        "id": 1911645512,
        "type": "product",
        "status": "sale",
        "is_available": True,
        "sku": "SH-001",
        "name": "قميص قطني",
        "price": {"amount": 115, "currency": "SAR"},
        "sale_price": {"amount": 0, "currency": "SAR"},
        "currency": "SAR",
        "url": "https://store.example/p1911645512",
        "thumbnail": "https://cdn.example/t.jpg",
    },
    "options": [{"id": 1, "product_option_id": 9, "name": "Size", "type": "radio", "value": []}],
    "images": [],
    "codes": [],
    "files": [],
}
SALLA_CART_ITEM = {"id": 88213, "product_id": 1911645512, "quantity": 1}
ZID_ITEM = {
    "id": 5521,
    "product_id": "8c7c5c8e-1f7b-4c43-9a48-3b6e0c2f7d10",
    "name": "Coffee beans 250g",
    "sku": "CB-250",
    "quantity": 3,
    "price": "45.50",
    "price_string": "45.50 SAR",
    "total": "136.50",
    "total_string": "136.50 SAR",
    "currency": "SAR",
    "images": [],
}
SHOPIFY_LINE_ITEM = {
    "id": 866550311766439020,
    "admin_graphql_api_id": "gid://shopify/LineItem/866550311766439020",
    "product_id": 632910392,
    "variant_id": 808950810,
    "title": "IPod Nano - 8GB",
    "name": "IPod Nano - 8GB - Pink",
    "variant_title": "Pink",
    "sku": "IPOD2008PINK",
    "vendor": None,
    "quantity": 1,
    "price": "199.00",
    "price_set": {
        "shop_money": {"amount": "199.00", "currency_code": "USD"},
        "presentment_money": {"amount": "199.00", "currency_code": "USD"},
    },
    "total_discount": "0.00",
    "taxable": True,
    "requires_shipping": True,
}
WOO_LINE_ITEM = {
    "id": 315,
    "name": "Woo Single #1",
    "product_id": 93,
    "variation_id": 0,
    "quantity": 2,
    "tax_class": "",
    "subtotal": "6.00",
    "subtotal_tax": "0.45",
    "total": "6.00",
    "total_tax": "0.45",
    "taxes": [{"id": 75, "total": "0.45", "subtotal": "0.45"}],
    "meta_data": [],
    "sku": "",
    "price": 3,
    "image": {"id": "", "src": ""},
    "parent_name": None,
}


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        pytest.param(
            SALLA_ORDER_ITEM,
            {
                "code": "1410727063",
                "productCode": "1911645512",
                "name": "قميص قطني",
                "sku": "SH-001",
                "quantity": 2,
                "unitPrice": 100,
                "totalAmount": 230,
                "currency": "SAR",
            },
            id="salla-order",
        ),
        pytest.param(SALLA_CART_ITEM, {"code": "88213", "productCode": "1911645512", "quantity": 1}, id="salla-cart"),
        pytest.param(
            ZID_ITEM,
            {
                "code": "5521",
                "productCode": "8c7c5c8e-1f7b-4c43-9a48-3b6e0c2f7d10",
                "name": "Coffee beans 250g",
                "sku": "CB-250",
                "quantity": 3,
                "unitPrice": 45.5,
                "totalAmount": 136.5,
                "currency": "SAR",
            },
            id="zid",
        ),
        pytest.param(
            SHOPIFY_LINE_ITEM,
            {
                "code": "866550311766439020",
                "productCode": "632910392",
                "name": "IPod Nano - 8GB - Pink",
                "sku": "IPOD2008PINK",
                "quantity": 1,
                "unitPrice": 199.0,
                "currency": "USD",
            },
            id="shopify",
        ),
        pytest.param(
            WOO_LINE_ITEM,
            {
                "code": "315",
                "productCode": "93",
                "name": "Woo Single #1",
                "quantity": 2,
                "unitPrice": 3,
                "totalAmount": 6.0,
            },
            id="woocommerce",
        ),
    ],
)
def test_provider_items_map_onto_the_standard_fields(item: dict[str, Any], expected: dict[str, Any]) -> None:
    assert map_items([item]) == [expected]
    assert list(expected) == [f for f in LINE_ITEM_FIELDS if f in expected]  # fields come in the standard order


def test_fields_an_item_does_not_have_are_left_out_not_null() -> None:
    assert standard_item({"id": 1, "sku": "", "name": None, "price": "n/a"}) == {"code": "1"}


def test_fallbacks_go_on_to_the_next_candidate() -> None:
    item = {"id": 7, "sku": "", "product": {"id": 70, "sku": "P-70", "name": "Mug", "price": {"amount": "12.50"}}}
    assert standard_item(item) == {"code": "7", "productCode": "70", "name": "Mug", "sku": "P-70", "unitPrice": 12.5}


def test_currency_option_fills_items_without_their_own() -> None:
    mapped = map_items([WOO_LINE_ITEM, SALLA_ORDER_ITEM], currency="EUR")
    assert [m["currency"] for m in mapped] == ["EUR", "SAR"]


def test_a_dict_of_items_keyed_by_id_maps_its_values() -> None:
    assert map_items({"88213": SALLA_CART_ITEM, "88214": {"id": 88214, "quantity": 2}}) == [
        {"code": "88213", "productCode": "1911645512", "quantity": 1},
        {"code": "88214", "quantity": 2},
    ]


def test_a_single_item_object_is_a_list_of_one() -> None:
    assert map_items(SALLA_CART_ITEM) == [{"code": "88213", "productCode": "1911645512", "quantity": 1}]


@pytest.mark.parametrize("empty", [None, MISSING, "", [], {}, ()])
def test_no_items_is_an_empty_list(empty: Any) -> None:
    assert map_items(empty) == []


@pytest.mark.parametrize(("items", "found"), [(5, "a number"), ("items", "a string"), (True, "a boolean")])
def test_a_scalar_is_not_a_list_of_items(items: Any, found: str) -> None:
    with pytest.raises(TransformError, match=f"mapItems expects a list of line items, found {found}"):
        map_items(items)


def test_an_entry_that_is_not_an_object_fails_with_its_index() -> None:
    with pytest.raises(TransformError, match=r"mapItems: item \[1\] is null, expected an object"):
        map_items([SALLA_CART_ITEM, None, SALLA_CART_ITEM])


def test_an_item_mapper_replaces_the_fallbacks() -> None:
    def mapper(item: Any) -> dict[str, Any]:
        return {"code": f"line-{item['id']}", "qty": item["quantity"]}

    assert map_items([SALLA_CART_ITEM], mapper, currency="SAR") == [{"code": "line-88213", "qty": 1, "currency": "SAR"}]


def test_item_mapping_option_uses_the_mapper_the_compiler_built() -> None:
    options = MappingProxyType({"itemMapping": MappingProxyType({"code": "product_id"}), "currency": "SAR"})
    step = TransformStep("mapItems", options=options)
    transform = build_transform(
        step, functions=FunctionRegistry(), item_mapper=lambda item: {"code": item["product_id"]}
    )
    assert transform([SALLA_CART_ITEM]) == [{"code": 1911645512, "currency": "SAR"}]


def test_an_item_mapper_failure_names_the_item() -> None:
    def mapper(item: Any) -> Any:
        raise MappingError("field 'code': no value")

    with pytest.raises(TransformError, match=r"^mapItems: item \[0\]: field 'code': no value$"):
        map_items([{"id": 1}], mapper)


def test_map_items_transform_without_options_uses_the_fallbacks() -> None:
    transform = build_transform(TransformStep("mapItems"), functions=FunctionRegistry())
    assert transform([ZID_ITEM])[0]["unitPrice"] == 45.5


_LEAF = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
_KEYS = st.sampled_from(["id", "product_id", "price", "amounts", "total", "amount", "quantity", "sku", "product"])
JSON = st.recursive(
    _LEAF, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=5), max_leaves=15
)


@settings(max_examples=300, deadline=None)
@given(items=JSON)
def test_any_json_maps_or_fails_with_a_transform_error(items: Any) -> None:
    try:
        mapped = map_items(items)
    except TransformError:
        return
    for entry in mapped:
        assert set(entry) <= set(LINE_ITEM_FIELDS)
        assert None not in entry.values()


def _order_mappers() -> list[Mapper]:
    """The example's orders mapper (a compiled itemMapping) and a mapItems rule without one (the fallbacks)."""
    definition = load_definition(EXAMPLE, vocabulary=vocabulary())
    plain = Mapper.compile(
        {"code": parse_rule("id"), "items": parse_rule({"path": "items", "transform": "mapItems"})},
        target=content_type("ecommerce:orders"),
    )
    return [compile_plan(definition).resources["orders"].mapper, plain]


@pytest.mark.parametrize("keyed", [False, True], ids=["list", "keyed-by-id"])
def test_a_record_with_more_line_items_than_a_record_may_hold_is_rejected_naming_the_count(keyed: bool) -> None:
    for mapper in _order_mappers():
        items: Any = [dict(SALLA_ORDER_ITEM, id=n) for n in range(MAX_ITEMS)]
        record = {"id": 1, "items": {str(n): item for n, item in enumerate(items)} if keyed else items}
        held = mapper(record)
        assert not held.rejected, held.problems
        assert len(held.data["items"]) == MAX_ITEMS
        record["items"] = {**record["items"], "x": SALLA_ORDER_ITEM} if keyed else [*items, SALLA_ORDER_ITEM]
        refused = mapper(record)
        # Rejected whole (D19: the engine sends it to the dead-letter store), the field and the count named.
        assert refused.rejected
        assert "items" not in refused.data
        (problem,) = [p for p in refused.problems if p.field == "items"]
        assert f"mapItems: 10,001 line items, more than the {MAX_ITEMS:,} a record may hold" in problem.message


def test_a_million_line_items_are_refused_before_any_is_mapped() -> None:
    calls: list[Any] = []

    def counted(item: Any) -> Any:
        calls.append(item)
        return item

    with pytest.raises(TransformError, match=r"1,000,000 line items"):
        map_items([{}] * 1_000_000, counted)
    assert calls == []
