"""The submission checklist passes for the Salla example, and each broken item fails alone, saying what to change."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from miniapp_sync.cli import main
from miniapp_sync.definition import inspect_definition
from miniapp_sync.definition.loader import load_file
from miniapp_sync.mapping.plan import compile_plan, vocabulary
from miniapp_sync.network import Rewrites
from miniapp_sync.provider.ratelimit import MARGIN
from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.submission.checks import (
    COVERAGE,
    ENDPOINTS,
    EVENTS,
    EXTENSIONS,
    SAMPLES,
    SHAPE,
    Report,
    SandboxAccess,
    run_checklist,
)
from miniapp_sync.testing import FakeClock, sandbox_thread

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "salla" / "definition.json5"
SAMPLE_DIR = ROOT / "examples" / "salla" / "samples"
CONFIG = SandboxConfig(products=75, customers=10, orders=8, carts=3)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    sandbox = Sandbox(CONFIG)
    await sandbox.start()
    try:
        yield sandbox
    finally:
        await sandbox.stop()


async def checklist(
    sandbox: Sandbox,
    change: Callable[[dict[str, Any]], None] | None = None,
    samples: Path | None = SAMPLE_DIR,
    *,
    rate: float = 1000,
    clock: FakeClock | None = None,
) -> Report:
    document, _ = load_file(EXAMPLE)
    document["sync"]["syncConfiguration"]["rateLimitPerSecond"] = rate
    if change is not None:
        change(document)
    loaded = inspect_definition(text=json.dumps(document), filename="definition.json", vocabulary=vocabulary())
    assert loaded.definition is not None
    access = SandboxAccess(
        credentials={"accessToken": CONFIG.access_token},
        rewrites=Rewrites({"https://api.salla.dev": sandbox.base_url, "https://accounts.salla.sa": sandbox.base_url}),
    )
    return await run_checklist(loaded, compile_plan(loaded.definition), access, samples, clock=clock)


async def test_the_checklist_waits_for_its_rate_budget_on_the_injected_clock(sandbox: Sandbox) -> None:
    clock = FakeClock()
    report = await checklist(sandbox, rate=2, clock=clock)
    assert report.passed, report.markdown()
    assert clock.sleeps  # two requests a second: the limiter waited, on the fake clock, not for real
    # No wait longer than one request's spacing: the budget's interval, paced its margin under it.
    assert all(0 < wait <= 0.5 / (1 - MARGIN) + 1e-9 for wait in clock.sleeps)


def test_the_checklist_redacts_what_an_installation_redacts() -> None:
    document, _ = load_file(EXAMPLE)
    document["auth"]["sensitiveKeys"] = ["merchantKey"]
    definition = inspect_definition(text=json.dumps(document), filename="d.json", vocabulary=vocabulary()).definition
    assert definition is not None
    access = SandboxAccess(
        credentials={"accessToken": "tok-1234", "storeId": 42},
        config={"client_id": "public-id", "client_secret": "shh-1234", "merchantKey": "mk-1234", "label": "x"},
    )
    assert sorted(access.secrets(definition)) == ["42", "mk-1234", "shh-1234", "tok-1234"]


def verdicts(report: Report) -> dict[str, str]:
    return {item.name: item.status for item in report.items}


def evidence(report: Report, name: str) -> str:
    return "\n".join(next(item for item in report.items if item.name == name).evidence)


async def test_the_salla_example_passes_every_item(sandbox: Sandbox) -> None:
    report = await checklist(sandbox)
    assert report.passed, report.markdown()
    assert {name: status for name, status in verdicts(report).items() if name != EXTENSIONS} == dict.fromkeys(
        (ENDPOINTS, COVERAGE, EVENTS, SHAPE, SAMPLES), "pass"
    )
    assert "page 2 has 15 record(s), expected 15" in evidence(report, SHAPE)  # 75 products, 60 a page
    assert "order.created.json → ecommerce:orders" in evidence(report, SAMPLES)


def _wrong_data_property(d: dict[str, Any]) -> None:
    d["sync"]["resources"]["customers"]["responseMapping"]["dataProperty"] = "items"


def _missing_required_field(d: dict[str, Any]) -> None:
    # The orders resource mapping serves no handler (those map orders themselves), so only coverage breaks.
    d["sync"]["resources"]["orders"]["apiMapping"]["code"] = {"path": "order_id", "transform": "toString"}


def _handler_without_trigger(d: dict[str, Any]) -> None:
    d["triggers"] = [t for t in d["triggers"] if t["event"] != "customer.created"]


def _wrong_total_property(d: dict[str, Any]) -> None:
    d["sync"]["resources"]["products"]["responseMapping"]["totalProperty"] = "pagination.count"


@pytest.mark.parametrize(
    ("change", "failing", "fragment"),
    [
        (_wrong_data_property, SHAPE, "responseMapping.dataProperty 'items'"),
        (_missing_required_field, COVERAGE, "code: required field of ecommerce:orders is missing (path 'order_id')"),
        (_handler_without_trigger, EVENTS, "add a trigger with event 'customer.created'"),
        (_wrong_total_property, SHAPE, "totalProperty is a number consistent with paging — total 60"),
    ],
)
async def test_each_broken_item_fails_alone_and_says_what_to_change(
    sandbox: Sandbox, change: Callable[[dict[str, Any]], None], failing: str, fragment: str
) -> None:
    report = await checklist(sandbox, change)
    failed = {name for name, status in verdicts(report).items() if status == "fail"}
    # A list that does not parse also fails its endpoint item: the fetch is the evidence.
    allowed = {failing, ENDPOINTS} if change is _wrong_data_property else {failing}
    assert failing in failed
    assert failed <= allowed, report.markdown()
    assert fragment in evidence(report, failing)


async def test_a_missing_sample_fails_only_the_samples_item(sandbox: Sandbox, tmp_path: Path) -> None:
    samples = tmp_path / "samples"
    shutil.copytree(SAMPLE_DIR, samples)
    (samples / "abandoned.cart.json").unlink()
    report = await checklist(sandbox, samples=samples)
    assert {n for n, s in verdicts(report).items() if s == "fail"} == {SAMPLES}
    assert "abandoned.cart: no sample — add" in evidence(report, SAMPLES)
    assert "serve --record-samples" in evidence(report, SAMPLES)


@pytest.fixture
def running() -> Iterator[str]:
    with sandbox_thread(CONFIG) as (_, url):
        yield url


def test_check_and_package_from_the_command_line(
    running: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    document, _ = load_file(EXAMPLE)
    document["sync"]["syncConfiguration"]["rateLimitPerSecond"] = 1000
    document["auth"]["config"]["client_secret"] = "do-not-ship-me"
    definition = tmp_path / "salla.json"
    definition.write_text(json.dumps(document))
    credentials = tmp_path / "sandbox.env"
    credentials.write_text(f"accessToken={CONFIG.access_token}\n")
    common = [
        str(definition), "--credentials-file", str(credentials), "--samples", str(SAMPLE_DIR),
        "--rewrite", f"https://api.salla.dev={running}", "--rewrite", f"https://accounts.salla.sa={running}",
    ]  # fmt: skip

    # A sensitive key with a value in the definition is a validation error: check refuses with exit 2.
    document["auth"]["config"]["webhookSecret"] = "whsec-1234"
    definition.write_text(json.dumps(document))
    assert main(["check", *common]) == 2
    document["auth"]["config"]["webhookSecret"] = ""
    definition.write_text(json.dumps(document))
    report_md = tmp_path / "report.md"
    assert main(["check", *common, "--report", str(report_md)]) == 0
    assert "✅ pass" in report_md.read_text()
    # The name check and package took the file by before: it still works, and says what replaces it.
    capsys.readouterr()
    deprecated = [a if a != "--credentials-file" else "--credentials" for a in common]
    assert main(["check", *deprecated]) == 0
    assert "--credentials is deprecated: use --credentials-file" in capsys.readouterr().err
    out = tmp_path / "package"
    assert main(["package", *common, "--out", str(out)]) == 0
    capsys.readouterr()
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {
        "definition.json",
        "check-report.md",
        "check-report.json",
        "webhooks.md",
        "SETUP.md",
        "CHANGELOG.md",
    } <= names
    assert "samples/order.created.json" in names
    assert "`order.created`" in (out / "webhooks.md").read_text()
    # The extensions in use and the compute functions called, documented for the reviewer (D41).
    extensions = (out / "EXTENSIONS.md").read_text()
    assert "- `sallaStatus`: Return a Salla status object's stable ``slug``, else its ``name``. (used at" in extensions
    assert "`sync.resources.orders.apiMapping.status.fn`" in extensions
    assert "- `webhook.customerExtraction.mapping.primaryPhone.transform`: transform 'normalizePhone'" in extensions
    assert "Extensions beyond the documented vocabulary (D41) | ⚠️ warn" in report_md.read_text()
    # A public OAuth client secret passes validation, but the package still ships it blank.
    assert "do-not-ship-me" not in (out / "definition.json").read_text()

    # A failing checklist is not packaged unless --force.
    (tmp_path / "few").mkdir()
    refused = tmp_path / "refused"
    assert main(["package", *common[:4], str(tmp_path / "few"), *common[5:], "--out", str(refused)]) == 1
    assert not refused.exists()
    assert main(["package", *common[:4], str(tmp_path / "few"), *common[5:], "--out", str(refused), "--force"]) == 0
    assert (refused / "definition.json").exists()


def test_package_blanks_secret_values(tmp_path: Path) -> None:
    from miniapp_sync.submission.package import blank_secrets

    document = {
        "auth": {
            "sensitiveKeys": ["webhookSecret"],
            "config": {"webhookSecret": "s", "client_id": "public", "apiKey": "k"},
        }
    }
    blanked = blank_secrets(document)
    assert blanked["auth"]["config"] == {"webhookSecret": "", "client_id": "public", "apiKey": ""}
    assert document["auth"]["config"]["webhookSecret"] == "s"  # the original is untouched


async def test_the_checklist_keeps_a_tenant_built_store_url_off_private_addresses(sandbox: Sandbox) -> None:
    document, _ = load_file(EXAMPLE)
    document["sync"]["baseUrl"] = "{{storeUrl}}/admin/v2"  # WooCommerce-style: the store's URL from the form
    document["sync"]["syncConfiguration"]["rateLimitPerSecond"] = 1000
    document["auth"]["form"] = {"storeUrl": {"type": "text", "label": "Store URL"}}
    loaded = inspect_definition(text=json.dumps(document), filename="definition.json", vocabulary=vocabulary())
    assert loaded.definition is not None, [f.render() for f in loaded.findings]
    rewrites = Rewrites({"https://accounts.salla.sa": sandbox.base_url})
    access = SandboxAccess(
        credentials={"accessToken": CONFIG.access_token}, user_input={"storeUrl": sandbox.base_url}, rewrites=rewrites
    )
    refused = await run_checklist(loaded, compile_plan(loaded.definition), access, SAMPLE_DIR)
    assert verdicts(refused)[ENDPOINTS] == "fail"
    assert "private or local address" in evidence(refused, ENDPOINTS)
    assert "--allow-private-network" in evidence(refused, ENDPOINTS)
    assert not any(route.startswith("GET /admin/v2") for route in sandbox.stats.by_route)

    allowed = dataclasses.replace(access, allow_private_network=True)
    report = await run_checklist(loaded, compile_plan(loaded.definition), allowed, SAMPLE_DIR)
    assert verdicts(report)[ENDPOINTS] == "pass", report.markdown()


def test_package_copies_no_file_from_outside_samples(tmp_path: Path) -> None:
    from miniapp_sync.definition.lint import lint
    from miniapp_sync.submission.package import write_package
    from miniapp_sync.submission.samples import read_sample

    outside = {
        tmp_path / "loot" / "creds.json": "LOOT-BY-DOTDOT",  # what ../../loot/creds reached from samples/
        tmp_path / "absolute.json": "LOOT-BY-ABSOLUTE-PATH",
        tmp_path / "secret.key": "LOOT-BY-SYMLINK",
    }
    for path, text in outside.items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        path.chmod(0o600)
    samples = tmp_path / "work" / "samples"
    samples.mkdir(parents=True)
    (samples / "order.created.json").symlink_to(tmp_path / "secret.key")
    document, _ = load_file(EXAMPLE)
    handler = document["sync"]["webhooks"]["handlers"]["order.created"]
    for event in ("../../loot/creds", str(tmp_path / "absolute")):
        document["sync"]["webhooks"]["handlers"][event] = handler
        document["triggers"].append({**document["triggers"][0], "event": event})
    definition, _ = lint(document, vocabulary=vocabulary())
    assert definition is not None

    out = tmp_path / "package"
    write_package(definition, document, Report("salla", "1", []), samples, out)
    shipped = "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
    assert not [text for text in outside.values() if text in shipped]
    assert not (out / "samples").exists()
    assert "symbolic link" in (read_sample(samples, "order.created").problem or "")
