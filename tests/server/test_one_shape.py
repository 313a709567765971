"""One interface shape (D37): the CLI's --format json and the management API print the same views."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.server.conftest import KEY, Api

from miniapp_sync.cli import main
from miniapp_sync.runtime import Runtime


def cli_json(capsys: pytest.CaptureFixture[str], store: str, *args: str) -> Any:
    code = main([*args, "--store", store, "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


async def test_cli_json_and_api_json_of_the_same_objects_are_equal(
    api: Api, seeded: tuple[Runtime, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, installation_id = seeded
    store = str(runtime.store.sqlite_path)
    monkeypatch.setenv("MINIAPP_SYNC_SECRET_KEY", KEY["MINIAPP_SYNC_SECRET_KEY"])
    pairs = [
        (("installations",), ("/api/installations", {})),
        (("runs", "--tenant", "acme"), ("/api/runs", {"installation": installation_id})),
        (
            ("records", "--tenant", "acme", "--limit", "2"),
            ("/api/records", {"installation": installation_id, "limit": "2"}),
        ),
        (("deliveries",), ("/api/deliveries", {})),
        (("deadletters", "list"), ("/api/deadletters", {"kind": "record"})),
        (("events", "--tenant", "acme"), ("/api/events", {"tenant": "acme"})),
    ]
    for cli_args, (path, query) in pairs:
        status, answered = await api.get(path, **query)
        assert status == 200
        assert cli_json(capsys, store, *cli_args) == answered, path
        assert answered["items"], path  # the comparison is over real rows
    # The next page too: the CLI's cursor is the API's.
    _, first = await api.get("/api/records", installation=installation_id, limit="2")
    _, rest = await api.get("/api/records", installation=installation_id, limit="2", cursor=first["next"])
    assert cli_json(capsys, store, "records", "--tenant", "acme", "--limit", "2", "--cursor", first["next"]) == rest
    status, letter = await api.get("/api/deadletters/1")
    assert status == 200
    assert cli_json(capsys, store, "deadletters", "show", "1") == letter
    assert "tok-SECRET-1" not in str(letter)  # masked with the installation's credentials (D30)
    status, one = await api.get(f"/api/installations/{installation_id}")
    assert status == 200
    assert cli_json(capsys, store, "installations")["items"] == [one]


def test_errors_under_format_json_are_json_on_stderr(
    seeded: tuple[Runtime, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, _ = seeded
    store = str(runtime.store.sqlite_path)
    monkeypatch.setenv("MINIAPP_SYNC_SECRET_KEY", KEY["MINIAPP_SYNC_SECRET_KEY"])
    assert main(["runs", "--limit", "0", "--store", store, "--format", "json"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    error = json.loads(err)["error"]
    assert (error["type"], error["field"]) == ("usage", "--limit")
    assert "from 1 to 1000, found 0" in error["message"]
    assert main(["records", "--tenant", "nobody", "--store", store, "--format=json"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(err) == {
        "error": {
            "type": "InstallationError",
            "message": "tenant 'nobody' has no installation",
            "hint": None,
            "field": None,
        }
    }
    assert main(["uninstall", "--tenant", "acme", "--ns", "salla", "--store", store, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "uninstalled"
