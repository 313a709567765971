"""A definition's plan compiled whole, or only for the resources a sync runs (``compile_plan(only=…)``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from miniapp_sync import compile_plan, load_definition, vocabulary
from miniapp_sync.definition.loader import load_file
from miniapp_sync.errors import MappingError
from miniapp_sync.runtime import load_for_sync, load_miniapp

ROOT = Path(__file__).resolve().parents[2] / "examples" / "salla"


def _sample(resource: str) -> dict[str, Any]:
    page = json.loads((ROOT / "samples" / "api" / f"{resource}.page1.json").read_text(encoding="utf-8"))
    return dict(page["data"][0])


def test_only_compiles_the_named_resources_and_maps_as_the_whole_plan_does() -> None:
    definition = load_definition(ROOT / "definition.json5", vocabulary=vocabulary())
    whole = compile_plan(definition)
    assert len(whole.resources) == 4
    assert whole.handlers
    assert whole.customer is not None
    part = compile_plan(definition, only={"products"})
    assert list(part.resources) == ["products"]
    assert part.handlers == {}  # a bulk sync maps no webhook
    assert part.customer is None
    record = _sample("products")
    assert part.resources["products"].mapper(record) == whole.resources["products"].mapper(record)


def test_a_sync_compiles_the_resources_it_runs(tmp_path: Path) -> None:
    document, _ = load_file(ROOT / "definition.json5")
    document["sync"]["resources"]["orders"]["enabled"] = False
    path = tmp_path / "definition.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    assert sorted(load_for_sync(path, None).plan.resources) == ["abandonedCarts", "customers", "products"]
    assert list(load_for_sync(path, ["orders"]).plan.resources) == ["orders"]  # named: even if disabled
    assert list(load_for_sync(path, ["nope"]).plan.resources) == []  # refused where the sync checks names
    whole = load_miniapp(path)  # every other command: every mapping
    assert len(whole.plan.resources) == 4
    assert whole.plan.handlers
    assert whole.plan.customer is not None


def test_a_mapping_that_does_not_compile_fails_the_syncs_that_run_it(tmp_path: Path) -> None:
    document, _ = load_file(ROOT / "definition.json5")
    mapping = document["sync"]["resources"]["customers"]["apiMapping"]
    mapping["primaryPhone"] = {"path": "mobile", "transform": "normalizePhone", "country": "XX"}
    path = tmp_path / "definition.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(MappingError, match="unknown country 'XX'"):
        load_miniapp(path)
    with pytest.raises(MappingError, match="unknown country 'XX'"):
        load_for_sync(path, ["customers"])
    assert list(load_for_sync(path, ["products"]).plan.resources) == ["products"]
