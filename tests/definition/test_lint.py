"""Validation reports every problem at once, with its path, expected vs found, and a hint."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from miniapp_sync.cli import main
from miniapp_sync.definition import inspect_definition, load_definition
from miniapp_sync.definition.lint import lint
from miniapp_sync.errors import DefinitionInvalid, Finding, InstallationError
from miniapp_sync.mapping.plan import vocabulary
from miniapp_sync.templating import Context, render

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "salla" / "definition.json5"

MINIMAL: dict[str, Any] = {
    "ns": "shop",
    "name": "shop",
    "type": "shop",
    "title": "Shop",
    "label": "Shop",
    "description": "1. Connect.",
    "shortDescription": "A shop",
    "status": "private",
    "version": "1.0.0",
    "category": "ecommerce",
    "icon": "https://example.com/i.svg",
    "logo": "https://example.com/l.svg",
    "docsUrl": "https://example.com/docs",
    "auth": {
        "type": "apikey",
        "sensitiveKeys": ["accessToken", "webhookSecret"],
        "config": {"accessToken": "", "webhookSecret": ""},
    },
    "triggers": [{"type": "miniapps:shop", "event": "order.created", "label": "Order created"}],
    "webhook": {
        "eventExtraction": {"source": "body", "path": "$.event"},
        "verification": {"type": "hmac-sha256", "headerName": "X-Sig", "secretKey": "webhookSecret"},
    },
    "sync": {
        "baseUrl": "https://api.example.com",
        "headers": {"Authorization": "Bearer [[accessToken]]"},
        "resources": {
            "products": {
                "contentType": "core:product",
                "endpoints": {"list": {"url": "/products"}},
                "pagination": {"paramName": "per_page", "defaultLimit": 50, "maxLimit": 100},
                "responseMapping": {"dataProperty": "data", "totalProperty": "pagination.total"},
                "apiMapping": {"code": {"path": "id", "transform": "toString"}, "name": "name"},
            }
        },
        "webhooks": {
            "handlers": {
                "order.created": {
                    "recordType": "order",
                    "operation": "create",
                    "mapping": {"code": "$.data.id", "status": "$.data.status.name"},
                }
            }
        },
    },
}


def check(document: Any) -> list[Finding]:
    return lint(document, vocabulary=vocabulary())[1]


def errors(document: Any) -> list[Finding]:
    return [f for f in check(document) if f.severity == "error"]


def test_minimal_definition_is_valid() -> None:
    definition, findings = lint(copy.deepcopy(MINIMAL), vocabulary=vocabulary())
    assert definition is not None
    assert [f for f in findings if f.severity == "error"] == []
    assert definition.sync is not None
    assert definition.sync.sync_configuration.batch_size == 200  # D4 defaults
    assert definition.sync.sync_configuration.rate_limit_per_second == 10
    assert definition.sync.sync_configuration.timeout == 30000


def test_bundled_salla_example_validates_clean() -> None:
    loaded = inspect_definition(EXAMPLE, vocabulary=vocabulary())
    assert [f.render() for f in loaded.errors] == []
    assert [f.render() for f in loaded.findings if f.severity == "warning"] == []
    assert loaded.definition is not None
    handlers = loaded.definition.handlers()
    assert set(handlers) <= loaded.definition.trigger_events()


def test_ten_mistakes_are_all_reported_in_one_run() -> None:
    doc = copy.deepcopy(MINIMAL)
    doc["ns"] = "My_Shop"  # 1 ns not kebab-case
    doc["triggers"][0]["type"] = "miniapps:My_Shop"
    doc["version"] = "one"  # 2 not semver
    doc["auth"]["config"]["webhookSecret"] = "s3cr3t"  # 3 a secret value in the submission
    doc["webhook"]["verification"]["secretKey"] = "signingSecret"  # 4 not in sensitiveKeys
    products = doc["sync"]["resources"]["products"]
    products["pagination"]["defaultLimit"] = 500  # 5 defaultLimit > maxLimit
    products["expandDetails"] = True  # 6 no details endpoint
    products["apiMapping"] = {"code": {"path": "id", "transform": "toStrin"}}  # 7 unknown transform, 8 no name
    doc["sync"]["headers"]["X-Store"] = "[[storeID]]"  # 9 placeholder nothing produces
    doc["sync"]["webhooks"]["handlers"]["order.updated"] = {  # 10 handler without trigger
        "recordType": "order",
        "operation": "update",
        "mapping": {"code": "$.data.id"},
    }
    found = errors(doc)
    codes = sorted(f.code for f in found)
    assert codes == sorted(
        [
            "ns",
            "semver",
            "secret-value",
            "secret-not-sensitive",
            "limit",
            "details",
            "unknown-transform",
            "required-field",
            "unknown-placeholder",
            "handler-without-trigger",
        ]
    ), [f.render() for f in found]
    by_code = {f.code: f for f in found}
    assert by_code["unknown-transform"].path == "sync.resources.products.apiMapping.code.transform"
    assert by_code["unknown-transform"].hint == "did you mean 'toString'?"
    assert by_code["handler-without-trigger"].hint == "add a trigger with event 'order.updated'"
    assert by_code["limit"].found == "500"
    assert "s3cr3t" not in " ".join(f.render() for f in found)  # secrets never echoed


def test_structural_errors_and_lint_are_reported_together() -> None:
    doc = copy.deepcopy(MINIMAL)
    doc["sync"]["syncConfiguration"] = {"batchSize": "lots", "rateLimitPerSecond": -1}
    doc["triggers"][0]["type"] = "miniapps:other"
    paths = {f.path: f for f in errors(doc)}
    assert "sync.syncConfiguration.batchSize" in paths
    assert paths["sync.syncConfiguration.batchSize"].found == '"lots"'
    assert "sync.syncConfiguration.rateLimitPerSecond" in paths
    assert paths["triggers[0].type"].expected == '"miniapps:shop"'


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        (
            lambda d: d["sync"]["resources"]["products"].pop("contentType"),
            "sync.resources.products.contentType",
            "missing",
        ),
        (
            lambda d: d["sync"]["resources"]["products"]["apiMapping"].update(name={"paths": "a"}),
            "sync.resources.products.apiMapping.name.paths",
            "'paths' must be a non-empty list",
        ),
        (
            lambda d: d["sync"]["resources"]["products"]["apiMapping"].update(
                name={"path": "a", "transform": "compute"}
            ),
            "sync.resources.products.apiMapping.name.fn",
            "needs 'fn'",
        ),
        (
            lambda d: d["sync"]["resources"]["products"]["apiMapping"].update(
                name={"path": "a", "transform": "compute", "fn": "fulName"}
            ),
            "sync.resources.products.apiMapping.name.fn",
            "unknown compute function 'fulName'",
        ),
        (
            lambda d: d["sync"]["resources"]["products"]["apiMapping"].update(name="$.data[?"),
            "sync.resources.products.apiMapping.name.path",
            "position",
        ),
        (
            lambda d: d["sync"]["webhooks"]["handlers"]["order.created"].update(resource="orders"),
            "sync.webhooks.handlers.order.created",
            "not both",
        ),
        (
            lambda d: d["webhook"]["verification"].update(type="hmac-md5"),
            "webhook.verification.type",
            "allowed values",
        ),
        (lambda d: d.update(category="shop"), "category", "unknown category"),
        (
            lambda d: d["sync"]["webhooks"]["handlers"]["order.created"]["mapping"].pop("code"),
            "sync.webhooks.handlers.order.created.mapping",
            "required field 'code'",
        ),
    ],
)
def test_broken_definitions_name_the_path_and_the_problem(change: Any, path: str, fragment: str) -> None:
    doc = copy.deepcopy(MINIMAL)
    change(doc)
    found = errors(doc)
    matching = [f for f in found if f.path == path and fragment in f.render()]
    assert matching, [f.render() for f in found]


def test_unknown_keys_are_warnings_with_a_suggestion() -> None:
    doc = copy.deepcopy(MINIMAL)
    doc["sync"]["resources"]["products"]["responseMapping"]["dataPropery"] = "items"
    definition, findings = lint(doc, vocabulary=vocabulary())
    assert definition is not None
    (warning,) = [f for f in findings if f.code == "unknown-key"]
    assert warning.severity == "warning"
    assert warning.path == "sync.resources.products.responseMapping.dataPropery"
    assert warning.hint == "did you mean 'dataProperty'?"
    assert definition.sync is not None
    assert definition.sync.resources["products"].response_mapping.model_extra == {"dataPropery": "items"}


def test_trigger_without_handler_is_a_note_not_an_error() -> None:
    doc = copy.deepcopy(MINIMAL)
    doc["triggers"].append({"type": "miniapps:shop", "event": "order.refunded"})
    findings = check(doc)
    (note,) = [f for f in findings if f.code == "triggers-only"]
    assert note.severity == "info"
    assert not [f for f in findings if f.severity == "error"]


def test_sync_only_fragment_is_accepted_with_a_warning() -> None:
    definition, findings = lint({"sync": copy.deepcopy(MINIMAL["sync"])}, vocabulary=vocabulary())
    assert definition is not None
    assert [f.code for f in findings if f.severity != "info"] == ["sync-only"]


def test_shape_b_handler_must_name_a_resource() -> None:
    doc = copy.deepcopy(MINIMAL)
    doc["sync"]["webhooks"]["handlers"]["order.created"] = {"resource": "product", "operation": "upsert"}
    (finding,) = [f for f in errors(doc) if f.code == "unknown-resource"]
    assert finding.hint == "did you mean 'products'?"


def test_load_definition_raises_with_every_error_and_location(tmp_path: Path) -> None:
    doc_path = tmp_path / "app.json5"
    doc_path.write_text(
        "{\n  ns: 'Bad_Ns',\n  sync: {resources: {p: {contentType: 'core:product'}}},\n  auth: {type: 'apikey'},\n}\n"
    )
    with pytest.raises(DefinitionInvalid) as caught:
        load_definition(doc_path, vocabulary=vocabulary())
    message = str(caught.value)
    assert "ns must be lowercase kebab-case" in message
    assert "sync.resources.p.endpoints: required field is missing" in message
    assert f"{doc_path}:2:3 ns" in message  # located in the file


def test_a_near_miss_is_suggested_only_among_triggers_no_handler_uses() -> None:
    doc = copy.deepcopy(MINIMAL)
    doc["triggers"].append({"type": "miniapps:shop", "event": "order.statusUpdated"})
    doc["sync"]["webhooks"]["handlers"]["order.status.updated"] = {
        "recordType": "order",
        "operation": "update",
        "mapping": {"code": "$.data.id"},
    }
    (finding,) = [f for f in errors(doc) if f.code == "handler-without-trigger"]
    assert finding.hint == "did you mean 'order.statusUpdated'?"


# --- placeholders: validate and the runtime share one rule (D29; issue #13 item 6) ------------
# For each place a definition can declare a key, an installation fills the bag that place feeds;
# validate must accept a placeholder exactly when the runtime's Context resolves it from there.


def _form(doc: dict[str, Any]) -> None:
    doc["auth"]["form"] = {"storeId": {"type": "text", "label": "Store id"}}


def _config(doc: dict[str, Any]) -> None:
    doc["auth"]["config"]["storeId"] = "1"


def _sensitive(doc: dict[str, Any]) -> None:
    doc["auth"]["sensitiveKeys"].append("storeId")


def _get_token(doc: dict[str, Any]) -> None:
    doc["auth"]["get_token"] = {"url": "https://x.example/token", "mapping": {"storeId": "$.store"}}


def _user_details(doc: dict[str, Any]) -> None:
    doc["auth"]["userDetails"] = {"url": "https://x.example/me", "mapping": {"storeId": "$.store.id"}}


def _tenant_key(doc: dict[str, Any]) -> None:
    doc["webhook"]["tenantExtraction"] = {"source": "body", "path": "$.merchant", "matchKey": "storeId"}


# Where each declaration puts the value at run time (installations.service, cli install).
DECLARATIONS: list[tuple[Callable[[dict[str, Any]], None], str]] = [
    (_form, "user_input"),
    (_config, "config"),
    (_sensitive, "credentials"),
    (_get_token, "credentials"),
    (_user_details, "metadata"),
    (_tenant_key, "metadata"),
]


def _resolves(template: str, bag: str) -> bool:
    try:
        render(template, Context(**{bag: {"storeId": "1"}}))  # type: ignore[arg-type]
    except InstallationError:
        return False
    return True


@pytest.mark.parametrize("template", ["[[storeId]]", "{{storeId}}"])
@pytest.mark.parametrize(("declare", "bag"), DECLARATIONS, ids=[d.__name__.strip("_") for d, _ in DECLARATIONS])
def test_validate_accepts_a_placeholder_exactly_when_the_runtime_resolves_it(
    declare: Callable[[dict[str, Any]], None], bag: str, template: str
) -> None:
    doc = copy.deepcopy(MINIMAL)
    declare(doc)
    doc["sync"]["headers"]["Store-Id"] = template
    findings = lint(doc, vocabulary=vocabulary())[1]
    flagged = any(f.code == "unknown-placeholder" and f.path == "sync.headers.Store-Id" for f in findings)
    assert flagged is not _resolves(template, bag)


def test_a_credential_placeholder_declared_only_in_the_install_form_is_an_error_that_names_the_fix() -> None:
    doc = copy.deepcopy(MINIMAL)
    _form(doc)
    doc["sync"]["headers"]["Store-Id"] = "[[storeId]]"
    (finding,) = [f for f in lint(doc, vocabulary=vocabulary())[1] if f.code == "unknown-placeholder"]
    assert finding.severity == "error"
    assert "[[storeId]]" in finding.message
    assert finding.hint == "auth.form fills {{storeId}}, not [[storeId]]"


def test_validate_text_output_shows_the_placeholder_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the environment's terminal width, not our code
    doc = copy.deepcopy(MINIMAL)
    _form(doc)
    doc["sync"]["headers"]["Store-Id"] = "[[storeId]]"
    doc["sync"]["resources"]["products"]["endpoints"]["list"]["url"] = "/stores/[[accessToken]]/products"
    path = tmp_path / "app.json"
    path.write_text(json.dumps(doc))
    assert main(["validate", str(path)]) == 2
    out = capsys.readouterr().out
    assert "placeholder [[storeId]] names a key" in " ".join(out.split())
    assert "/stores/[[accessToken]]/products" in out  # the summary table, not eaten as Rich markup


def test_a_cli_error_quoting_a_placeholder_shows_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "app.json5"
    path.write_text("{ sync: { baseUrl: '[[x]]' }, [[oops]] }")
    assert main(["validate", str(path)]) == 2
    assert "[[oops]]" in capsys.readouterr().err


# --- literals (issue #13 item 7) and the legacy webhook.ecommerce (item 11) ---------------------


def test_non_string_literals_validate_and_a_string_that_reads_like_text_says_how_to_write_it() -> None:
    doc = copy.deepcopy(MINIMAL)
    mapping = doc["sync"]["resources"]["products"]["apiMapping"]
    mapping.update({"weight": 42, "active": True, "note": None, "platform": "Salla Store", "sku": "sku"})
    assert errors(doc) == []
    found = [f for f in check(doc) if f.path.startswith("sync.resources.products.apiMapping")]
    assert [(f.severity, f.code, f.path) for f in found] == [
        ("warning", "literal-like", "sync.resources.products.apiMapping.platform")
    ]
    assert found[0].hint == "a literal string is written { value: 'text' }; a bare string is read as a path"


def test_a_string_that_is_no_path_says_how_a_literal_string_is_written() -> None:
    doc = copy.deepcopy(MINIMAL)
    doc["sync"]["resources"]["products"]["apiMapping"]["platform"] = "items[x]"
    (found,) = errors(doc)
    assert found.code == "path-syntax"
    assert found.hint == "a literal string is written { value: 'text' }; a bare string is read as a path"


def test_a_list_rule_says_how_a_literal_list_is_written() -> None:
    doc = copy.deepcopy(MINIMAL)
    doc["sync"]["resources"]["products"]["apiMapping"]["tags"] = ["a", "b"]
    (found,) = errors(doc)
    assert found.path == "sync.resources.products.apiMapping.tags"
    assert found.hint == "a literal list or text is written { value: … }"


def test_legacy_webhook_ecommerce_is_deprecated_not_unknown() -> None:
    doc = copy.deepcopy(MINIMAL)
    doc["webhook"]["ecommerce"] = {"orders": {"event": "order.created"}}
    found = [f for f in check(doc) if f.path.startswith("webhook.ecommerce")]
    assert [(f.severity, f.code) for f in found] == [("warning", "deprecated")]
    assert "deprecated" in found[0].message
    assert found[0].hint is not None
    assert "sync.webhooks.handlers" in found[0].hint


def test_an_invalid_schedule_is_a_validation_error() -> None:
    document = {"sync": {"syncConfiguration": {"schedule": "hourly"}}}
    findings = lint(document)[1]
    assert any(f.code == "schedule" and f.severity == "error" for f in findings)


@pytest.mark.parametrize("event", ["../../loot/creds", "/etc/passwd", "~/.ssh/id_rsa", "C:\\secrets", "a/./b"])
def test_validate_makes_path_like_event_names_an_error_not_info(event: str) -> None:
    doc = copy.deepcopy(MINIMAL)
    doc["triggers"].append({"type": "miniapps:shop", "event": event, "label": "Loot"})
    doc["sync"]["webhooks"]["handlers"][event] = doc["sync"]["webhooks"]["handlers"]["order.created"]
    found = [f for f in errors(doc) if f.code == "path-like-event"]
    assert {f.path for f in found} == {"triggers[1].event", f"sync.webhooks.handlers.{event}"}
    assert "reads as a file path" in found[0].message


def test_event_names_with_slashes_such_as_shopify_topics_stay_valid() -> None:
    doc = copy.deepcopy(MINIMAL)
    doc["triggers"][0]["event"] = "orders/create"
    doc["sync"]["webhooks"]["handlers"] = {"orders/create": doc["sync"]["webhooks"]["handlers"]["order.created"]}
    assert [f for f in errors(doc) if f.code == "path-like-event"] == []
