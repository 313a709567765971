"""The view models' JSON and the schema written from them agree (D37)."""

from __future__ import annotations

import dataclasses

import jsonschema
import pytest
from openapi_schema_validator import OAS30Validator

from miniapp_sync.store import Run
from miniapp_sync.views import (
    DeadLetterView,
    ErrorView,
    InstallationView,
    RecordView,
    RunView,
    SubscriptionView,
    TriggerEventView,
    camel,
    components,
    timestamp,
    to_json,
)
from miniapp_sync.views.schema import REF_ROOT

VIEWS = [DeadLetterView, ErrorView, InstallationView, RecordView, RunView, SubscriptionView]


def test_times_are_iso_8601_utc_with_milliseconds_and_z() -> None:
    assert timestamp(1_767_225_600.5) == "2026-01-01T00:00:00.500Z"


def test_names_are_camel_case() -> None:
    assert camel("installation_id") == "installationId"
    assert camel("next_attempt_at") == "nextAttemptAt"
    assert camel("id") == "id"


def test_a_run_renders_to_what_its_schema_describes() -> None:
    run = Run("r1", "i1", None, "succeeded", 1_767_225_600.0, 1_767_225_601.0, {"products": {"fetched": 3}}, None)
    checkpoint = {("i1", "products"): {"page": 4, "seen": 300, "began": 1.0}}
    shown = to_json(RunView.of(run, tenant="acme", ns="salla", checkpoints=checkpoint))
    counts = dict.fromkeys(("created", "updated", "unchanged", "stale", "rejected", "deleted", "pages"), 0)
    assert shown == {
        "id": "r1",
        "installationId": "i1",
        "tenant": "acme",
        "ns": "salla",
        "resource": None,
        "status": "succeeded",
        "startedAt": "2026-01-01T00:00:00.000Z",
        "finishedAt": "2026-01-01T00:00:01.000Z",
        "durationSeconds": 1.0,
        "resources": [  # figures a run of an older version did not record are 0
            {
                "resource": "products",
                "fetched": 3,
                **counts,
                "requests": 0,
                "retries": 0,
                "throttled": 0,
                "seconds": 0.0,
                "resumedFrom": None,
                "resumesFrom": {"page": 4, "seen": 300},
            },
        ],
        "errors": [],
        "progress": {"resource": None, "records": 0, "pages": 0, "rate": None, "throttled": 0, "updatedAt": None},
        "error": None,
        "jobId": None,  # run outside a queue; a job's run names it (D36)
    }
    document = {"$ref": REF_ROOT + "RunView", "components": {"schemas": components([RunView])}}  # nested views
    OAS30Validator(document).validate(shown)  # the OpenAPI 3.0 dialect: `nullable`
    with pytest.raises(jsonschema.ValidationError):
        OAS30Validator(document).validate({**shown, "status": "lost"})


@pytest.mark.parametrize("view", [*VIEWS, TriggerEventView], ids=lambda v: v.__name__)
def test_every_field_is_in_the_schema_required_and_nothing_else(view: type) -> None:
    schema = components([view])[view.__name__]
    names = [camel(f.name) for f in dataclasses.fields(view)]
    assert list(schema["properties"]) == names
    assert schema["required"] == names
    assert schema["additionalProperties"] is False


def test_nested_views_are_references_to_their_own_component() -> None:
    schemas = components([ErrorView])
    assert schemas["ErrorView"]["properties"]["error"] == {"$ref": REF_ROOT + "ErrorDetail"}
    assert "ErrorDetail" in schemas
