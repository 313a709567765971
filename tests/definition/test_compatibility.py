"""Compatibility with the hosted runtime (D41; issue #13 item 13): one registry, every use reported."""

from __future__ import annotations

import copy
import json
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from miniapp_sync.cli import main
from miniapp_sync.definition import Profile, inspect_definition
from miniapp_sync.definition.compatibility import DOCUMENTED_FIELDS, DOCUMENTED_TRANSFORMS, EXTENSIONS, compatibility
from miniapp_sync.definition.lint import lint
from miniapp_sync.definition.model import Sync
from miniapp_sync.definition.rules import Rule
from miniapp_sync.definition.webhook_model import Webhook
from miniapp_sync.mapping.plan import vocabulary
from miniapp_sync.mapping.transforms import TRANSFORM_NAMES

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "salla" / "definition.json5"

SYNC: dict[str, Any] = {
    "sync": {
        "baseUrl": "https://api.example.com",
        "syncConfiguration": {"schedule": "0 */6 * * *"},
        "resources": {
            "orders": {
                "contentType": "ecommerce:orders",
                "endpoints": {"list": {"url": "/orders"}},
                "pagination": {"style": "cursor", "cursorParam": "after"},
                "responseMapping": {"dataProperty": "$", "totalProperty": "header:X-Total"},
                "detectDeletes": True,
                "apiMapping": {
                    "code": {"path": "id", "transform": "toString"},
                    "source": {"value": "shop"},
                    "weight": 42,
                    "quantity": {"path": "qty", "transform": ["toNumberOrNull", "toInteger"]},
                    "status": {"path": "status", "transform": "compute", "fn": "sallaStatus"},
                    "discount": {"path": "codes", "transform": "joinCodes", "separator": ";"},
                },
            }
        },
        "webhooks": {
            "handlers": {
                "customer.created": {"recordType": "customer", "operation": "upsert", "mapping": {"code": "$.id"}}
            }
        },
    }
}  # fmt: skip


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """Return the model class inside ``X | None`` or ``dict[str, X]`` (None for leaves and mappings)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if arg is not types.NoneType and arg is not str and (found := _model_of(arg)) is not None:
            return found
    return None


def _fields(model: type[BaseModel], prefix: str) -> set[str]:
    out = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}.{field.alias or name}"
        out.add(path)
        annotation = field.annotation
        if typing.get_origin(annotation) is dict and typing.get_args(annotation)[1] is not Rule:
            inner = _model_of(typing.get_args(annotation)[1])
            if inner is not None:
                out |= _fields(inner, f"{path}.*")
        elif (inner := _model_of(annotation)) is not None:
            out |= _fields(inner, path)
    return out


def test_every_transform_is_documented_or_registered() -> None:
    registered = {key.removeprefix("transform:") for key in EXTENSIONS if key.startswith("transform:")}
    assert DOCUMENTED_TRANSFORMS | registered == TRANSFORM_NAMES


@pytest.mark.parametrize(("model", "prefix"), [(Sync, "sync"), (Webhook, "webhook")])
def test_every_field_of_the_model_is_documented_or_registered(model: type[BaseModel], prefix: str) -> None:
    documented = DOCUMENTED_FIELDS | {
        *(f"webhook.{k}" for k in ("eventExtraction", "verification", "transactionId", "customerExtraction")),
        *("webhook.response", "webhook.challengeResponse"),
    }

    def covered(path: str) -> bool:
        parts = path.split(".")
        prefixes = {".".join(parts[:n]) for n in range(1, len(parts))}
        return path in documented or path in EXTENSIONS or bool(prefixes & set(EXTENSIONS))

    fields = {p for p in _fields(model, prefix) if not p.startswith("webhook.") or p.count(".") == 1}
    assert sorted(p for p in fields if not covered(p)) == []


def test_the_karzoun_profile_reports_each_extension_with_its_path() -> None:
    _, findings = lint(copy.deepcopy(SYNC), vocabulary=vocabulary(), profile=Profile.karzoun)
    reported = {(f.code, f.path) for f in findings if f.code in ("extension", "compute-function")}
    orders = "sync.resources.orders"
    assert reported == {
        ("extension", "sync.syncConfiguration.schedule"),
        ("extension", f"{orders}.pagination.style"),
        ("extension", f"{orders}.pagination.cursorParam"),
        ("extension", f"{orders}.responseMapping.dataProperty"),
        ("extension", f"{orders}.responseMapping.totalProperty"),
        ("extension", f"{orders}.detectDeletes"),
        ("extension", f"{orders}.apiMapping.source.value"),
        ("extension", f"{orders}.apiMapping.weight"),
        ("extension", f"{orders}.apiMapping.quantity.transform"),  # the list, and toInteger
        ("extension", f"{orders}.apiMapping.discount.separator"),
        ("extension", "sync.webhooks.handlers.customer.created.recordType"),
        ("compute-function", f"{orders}.apiMapping.status.fn"),
    }
    messages = " ".join(f.message for f in findings)
    assert "a pagination style other than page numbers ('cursor')" in messages
    assert "transform 'toInteger'" in messages
    assert "a list of transforms applied in turn" in messages
    assert all(f.severity == "warning" for f in findings if f.code in ("extension", "compute-function"))


def test_the_default_profile_reports_no_extension() -> None:
    _, findings = lint(copy.deepcopy(SYNC), vocabulary=vocabulary())
    assert not [f for f in findings if f.code in ("extension", "compute-function")]


def test_compatibility_lists_the_compute_functions_with_where_they_are_used() -> None:
    found = compatibility(SYNC)
    assert found.functions == {"sallaStatus": (("sync", "resources", "orders", "apiMapping", "status", "fn"),)}


def test_the_salla_example_is_clean_by_default_and_lists_its_extensions_for_karzoun() -> None:
    clean = inspect_definition(EXAMPLE, vocabulary=vocabulary())
    assert [(f.severity, f.render()) for f in clean.findings] == []
    hosted = inspect_definition(EXAMPLE, vocabulary=vocabulary(), profile=Profile.karzoun)
    assert hosted.valid
    extensions = [f for f in hosted.findings if f.code in ("extension", "compute-function")]
    assert extensions
    assert all(f.location is not None and f.location.startswith(str(EXAMPLE)) for f in extensions)
    assert {f.code for f in hosted.findings} == {"extension", "compute-function"}


def test_validate_profile_karzoun_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(EXAMPLE), "--profile", "karzoun", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["profile"] == "karzoun"
    assert report["counts"]["warning"] == len(report["findings"]) > 0
    assert main(["validate", str(EXAMPLE), "--profile", "hosted"]) == 2  # a usage error names the choices
    assert "karzoun" in capsys.readouterr().err
