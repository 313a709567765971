"""validate says how the shared URL finds the tenant (D24) and warns of update keys that are only an id (D26)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from miniapp_sync.definition.lint import lint
from miniapp_sync.definition.loader import load_file
from miniapp_sync.errors import Finding

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GUIDE = EXAMPLES / "salla-guide" / "definition.json5"
FULL = EXAMPLES / "salla" / "definition.json5"


def findings(document: dict[str, Any]) -> list[Finding]:
    return [f for f in lint(document)[1] if f.code == "webhook"]


def guide() -> dict[str, Any]:
    document, _ = load_file(GUIDE)
    return document


def test_validate_warns_when_an_update_handler_s_transaction_id_is_only_the_record_id() -> None:
    (warning,) = [f for f in findings(guide()) if f.severity == "warning"]
    assert warning.path == "webhook.transactionId"
    assert "'order.status.updated' (update) is only the record's id ($.data.id)" in warning.message
    assert warning.hint is not None
    assert "updated_at" in warning.hint


def test_an_override_with_an_updated_at_path_or_a_create_handler_needs_no_warning() -> None:
    document = guide()
    document["webhook"]["transactionId"]["overrides"] = {
        "order.status.updated": {"paths": ["$.data.id", "$.data.updated_at.date"]}
    }
    assert [f.severity for f in findings(document)] == ["info"]
    document, _ = load_file(FULL)  # shape B upserts for creations, overrides for the updates
    assert [f for f in findings(document) if f.severity == "warning"] == []


def test_validate_says_which_tenant_rule_applies_without_tenant_extraction() -> None:
    (note,) = [f for f in findings(guide()) if f.severity == "info"]
    assert "Salla: body $.merchant matched against metadata storeId / merchantId" in note.message
    document, _ = load_file(FULL)  # tenantExtraction: nothing to say
    assert [f for f in findings(document) if f.severity == "info"] == []


def test_validate_warns_when_no_rule_can_find_the_tenant() -> None:
    document = guide()
    document["ns"] = document["name"] = "acmeshop"
    document["sync"]["baseUrl"] = "https://api.acme.example/v1"
    (warning,) = [f for f in findings(document) if f.path == "webhook.tenantExtraction"]
    assert warning.severity == "warning"
    assert "nothing in a delivery names its tenant" in warning.message
    assert "/miniapps/acmeshop/webhooks/<installation id>" in (warning.hint or "")
