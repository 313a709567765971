"""`validate`, `schema` and `map` from the command line: output, JSON, exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from miniapp_sync.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "salla" / "definition.json5"
SAMPLES = ROOT / "examples" / "salla" / "samples"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_example_is_clean(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", EXAMPLE)
    assert code == 0
    assert "valid: 0 errors, 0 warnings" in out
    assert "order.created" in out
    assert "products" in out


def test_validate_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", EXAMPLE, "--format", "json")
    report = json.loads(out)
    assert code == 0
    assert report["valid"] is True
    assert report["summary"]["ns"] == "salla"
    assert set(report["summary"]["resources"]) == {"products", "customers", "orders", "abandonedCarts"}
    assert all(h["trigger"] for h in report["summary"]["handlers"].values())


def test_invalid_definition_exits_2_with_every_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"ns": "Bad NS", "auth": {"type": "magic"}, "sync": {"resources": {"p": {}}}}))
    code, out, err = run(capsys, "validate", bad, "--format", "json")
    assert code == 2
    report = json.loads(out)
    paths = {f["path"] for f in report["findings"] if f["severity"] == "error"}
    assert {"ns", "auth.type", "sync.resources.p.contentType", "sync.resources.p.endpoints", "version"} <= paths
    assert "Traceback" not in out + err


def test_syntax_error_names_file_line_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.json5"
    bad.write_text("{\n  ns: 'x',\n  sync: { resources: [ }\n}\n")
    code, _, err = run(capsys, "validate", bad)
    assert code == 2
    assert f"{bad}:3:" in err
    assert "Error:" in err
    assert "Traceback" not in err


def test_missing_file_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "validate", "/nonexistent/app.json")
    assert code == 2
    assert "Traceback" not in err


def test_schema_is_json_schema_with_document_names(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema")
    schema = json.loads(out)
    assert code == 0
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert "sync" in schema["properties"]
    text = json.dumps(schema)
    for name in ("syncConfiguration", "rateLimitPerSecond", "apiMapping", "responseMapping", "get_token"):
        assert name in text


def test_map_resource_page(capsys: pytest.CaptureFixture[str]) -> None:
    page = SAMPLES / "api" / "products.page1.json"
    code, out, _ = run(capsys, "map", EXAMPLE, "--resource", "products", "--input", page, "--format", "json")
    report = json.loads(out)
    assert code == 0
    assert report["contentType"] == "core:product"
    records = report["records"]
    assert len(records) == len(json.loads(page.read_text())["data"])
    assert all(not r["rejected"] for r in records)
    assert all(isinstance(r["data"]["code"], str) for r in records)


def test_map_event_shows_event_transaction_customer_and_trigger(capsys: pytest.CaptureFixture[str]) -> None:
    payload = SAMPLES / "order.created.json"
    body = json.loads(payload.read_text())
    code, out, _ = run(capsys, "map", EXAMPLE, "--input", payload, "--format", "json")
    report = json.loads(out)
    assert code == 0
    assert report["event"] == "order.created"
    assert report["eventMatches"] is True
    assert report["transactionId"] == str(body["data"]["id"])
    assert report["triggerFires"] is True
    assert report["customer"]["data"]["code"] == str(body["data"]["customer"]["id"])
    (record,) = report["records"]
    assert record["data"]["code"] == str(body["data"]["id"])
    assert len(record["data"]["items"]) == len(body["data"]["items"])


def test_map_text_output_and_rejection_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    payload = tmp_path / "p.json"
    payload.write_text(json.dumps({"event": "order.created", "data": {"status": {"name": "x"}}}))
    code, out, _ = run(capsys, "map", EXAMPLE, "--input", payload)
    assert code == 1
    assert "rejected" in out
    assert "code" in out


def test_map_bad_json_input_names_line_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    payload = tmp_path / "p.json"
    payload.write_text('{\n  "event": "order.created",\n  "data": {,}\n}')
    code, _, err = run(capsys, "map", EXAMPLE, "--input", payload)
    assert code == 2
    assert "p.json:3:" in err


def test_map_refuses_an_input_larger_than_a_provider_answer(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "map", EXAMPLE, "--input", "/dev/zero")
    assert code == 2
    assert "/dev/zero holds more than 67,108,864 bytes, the most a provider answer may be" in " ".join(err.split())


def test_map_unknown_resource_lists_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    page = SAMPLES / "api" / "products.page1.json"
    code, _, err = run(capsys, "map", EXAMPLE, "--resource", "prodcts", "--input", page)
    assert code == 2
    assert "known: products" in err


def test_console_script_runs_as_a_process() -> None:
    exe = Path(sys.executable).parent / "miniapp-sync"
    result = subprocess.run(
        [str(exe), "validate", str(EXAMPLE), "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["valid"] is True
