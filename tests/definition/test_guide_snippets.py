"""The Sync guide's three snippets, copied verbatim into files, validate and map the bundled samples.

``data/guide/*.js`` are the guide's JavaScript blocks (shared/spec/sync-guide.md) exactly as
shown: property lists such as ``sync: { … },`` with ``/* … */`` placeholders. Each must load
(D1), report only what its placeholders cause, and map the Salla samples.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from miniapp_sync.cli import main
from miniapp_sync.definition import inspect_definition
from miniapp_sync.mapping.plan import vocabulary

ROOT = Path(__file__).resolve().parents[2]
GUIDE = Path(__file__).parent / "data" / "guide"
SPEC = ROOT.parent / "shared" / "spec" / "sync-guide.md"
SAMPLES = ROOT / "examples" / "salla" / "samples"
SYNC_ONLY = ("warning", "sync-only", "")


def findings(name: str) -> set[tuple[str, str, str]]:
    loaded = inspect_definition(GUIDE / name, vocabulary=vocabulary())
    return {(f.severity, f.code, f.path) for f in loaded.findings}


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.skipif(not SPEC.exists(), reason="the shared spec is not beside this checkout")
def test_the_snippet_files_are_the_guides_blocks_verbatim() -> None:
    blocks = re.findall(r"```javascript\n(.*?)```", SPEC.read_text(encoding="utf-8"), re.S)
    files = [(GUIDE / name).read_text(encoding="utf-8") for name in ("structure.js", "resource.js", "handlers.js")]
    assert blocks == files


def test_the_structure_snippet_reports_only_what_its_placeholders_leave_out() -> None:
    # `products: { /* ... */ }` and `'order.created': { /* same mapping style as resources */ }`
    # are empty objects: their required fields are missing, and that is all.
    empty = {
        *(("error", "missing", f"sync.resources.{key}.{field}") for key in ("products", "customers", "orders")
          for field in ("contentType", "endpoints", "apiMapping")),
        ("error", "missing", "sync.webhooks.handlers.order.created.operation"),
    }  # fmt: skip
    assert findings("structure.js") == {SYNC_ONLY, *empty}


def test_the_resource_snippet_validates_as_a_resource_of_a_sync_only_document() -> None:
    assert findings("resource.js") == {SYNC_ONLY, ("info", "fragment", "")}


def test_the_handlers_snippet_validates() -> None:
    assert findings("handlers.js") == {SYNC_ONLY}


def test_the_resource_snippet_maps_the_salla_products_page(capsys: pytest.CaptureFixture[str]) -> None:
    page = SAMPLES / "api" / "products.page1.json"
    code, out, _ = run(
        capsys, "map", GUIDE / "resource.js", "--resource", "products", "--input", page, "--format", "json"
    )
    assert code == 0
    records = json.loads(out)["records"]
    assert len(records) == 3
    assert not any(r["rejected"] for r in records)
    assert records[0]["data"] == {"code": "1734512301", "name": "قهوة خولاني سعودية - 500 جم", "unitPrice": 75}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            "order.created",
            {"code": 1920334455, "orderNumber": 23817, "totalAmount": 635.65, "status": "بإنتظار المراجعة"},
        ),
        ("order.status.updated", {"code": 1920334455, "status": "قيد التنفيذ"}),
    ],
)
def test_the_handlers_snippet_maps_the_salla_webhook_samples(
    capsys: pytest.CaptureFixture[str], event: str, expected: dict[str, object]
) -> None:
    payload = SAMPLES / f"{event}.json"
    code, out, _ = run(capsys, "map", GUIDE / "handlers.js", "--input", payload, "--event", event, "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert report["handler"]["contentType"] == "ecommerce:orders"
    (record,) = report["records"]
    assert not record["rejected"]
    assert expected.items() <= record["data"].items()


def test_a_snippet_without_event_extraction_says_to_pass_the_event(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "map", GUIDE / "handlers.js", "--input", SAMPLES / "order.created.json")
    assert code == 2
    assert "there is no webhook.eventExtraction" in err
    assert "order.created, order.status.updated" in err
