"""Dry runs of the example's mappings: the records a page maps to, and what a webhook body would do."""

from __future__ import annotations

from pathlib import Path

import pytest

from miniapp_sync.errors import UsageError
from miniapp_sync.runtime import load_miniapp
from miniapp_sync.submission.dry_run import map_event, map_resource, records_of

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "salla" / "definition.json5"


def test_records_are_found_by_data_property_in_a_bare_list_or_as_one_record() -> None:
    assert records_of({"data": [{"id": 1}, {"id": 2}]}, "data") == [{"id": 1}, {"id": 2}]
    assert records_of({"data": {"id": 1}}, "data") == [{"id": 1}]  # a details response
    assert records_of([{"id": 1}], "data") == [{"id": 1}]
    assert records_of({"id": 1}, "$") == [{"id": 1}]


def test_a_page_maps_and_an_unknown_resource_is_a_usage_error_with_a_suggestion() -> None:
    app = load_miniapp(EXAMPLE)
    page = {"data": [{"id": 7, "name": "Mug", "price": {"amount": 5, "currency": "SAR"}}, {"name": "no id"}]}
    report = map_resource(app.plan, app.definition, "products", page)
    assert report["contentType"] == "core:product"
    assert [(r["index"], r["rejected"]) for r in report["records"]] == [(0, False), (1, True)]
    assert report["records"][0]["data"]["code"] == "7"
    with pytest.raises(UsageError, match="did you mean 'products'"):
        map_resource(app.plan, app.definition, "prodcts", page)


def test_a_body_naming_no_event_asks_for_one() -> None:
    app = load_miniapp(EXAMPLE)
    with pytest.raises(UsageError, match="pass --event"):
        map_event(app.plan, app.definition, None, {"data": {}}, b"{}", {})
