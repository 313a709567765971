"""Webhook commands from the command line: subscriptions, events, the inbox, and dead letters."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from miniapp_sync.cli import main
from miniapp_sync.runtime import Runtime, load_miniapp
from miniapp_sync.sandbox import Sandbox
from miniapp_sync.store import InboxEntry, Installation
from miniapp_sync.webhooks.processor import Processor

from .conftest import EXAMPLE, KEY, SANDBOX, example, write_definition


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIAPP_SYNC_SECRET_KEY", KEY["MINIAPP_SYNC_SECRET_KEY"])


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "store.sqlite")


def run(capsys: pytest.CaptureFixture[str], *args: Any) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def install(store: str, credentials: dict[str, Any] | None = None) -> Installation:
    with Runtime.open(store) as runtime:
        return runtime.store.save_installation(
            "acme",
            "salla",
            credentials=runtime.installations.vault.encrypt(credentials or {}),
            metadata={"storeId": str(SANDBOX.merchant_id)},
            user_input={},
            status="connected",
        )


def receive(store: str, definition: Path, *events: str) -> None:
    """Store signed Salla deliveries in the inbox and process them with ``definition``."""
    sandbox = Sandbox(SANDBOX)
    installation = install(store)

    async def go() -> None:
        with Runtime.open(store) as runtime:
            app = runtime.add(load_miniapp(definition))
            processor = Processor(runtime)
            entries = []
            for event in events:
                raw, _ = sandbox.webhook(event)
                entries.append(InboxEntry("salla", installation.id, event, f"{event}-1", "pending", raw))
            processor.inbox.add(entries)
            assert app.ns == "salla"
            await processor.settle()

    asyncio.run(go())


def test_subscribe_shows_a_generated_secret_once_and_never_again(
    capsys: pytest.CaptureFixture[str], store: str
) -> None:
    code, out, _ = run(capsys, "subscribe", "-t", "acme", "--ns", "salla", "--url", "https://crm.example/in",
                       "--store", store, "--format", "json")  # fmt: skip
    assert code == 0
    created = json.loads(out)
    assert len(created["secret"]) > 30
    code, out, _ = run(capsys, "subscriptions", "--store", store, "--format", "json")
    (listed,) = json.loads(out)["items"]
    assert listed["url"] == "https://crm.example/in"
    assert created["secret"] not in out
    assert run(capsys, "unsubscribe", created["id"], "--store", store)[0] == 0
    assert run(capsys, "unsubscribe", created["id"], "--store", store)[0] == 2


def test_subscribe_takes_a_secret_from_the_environment_and_refuses_a_bad_url(
    capsys: pytest.CaptureFixture[str], store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", "from-the-environment")
    code, out, _ = run(capsys, "subscribe", "-t", "acme", "--ns", "salla", "--url", "https://crm.example/in",
                       "--secret", "env:HOOK_SECRET", "--store", store)  # fmt: skip
    assert code == 0
    assert "from-the-environment" not in out
    for url in ("ftp://x", "http://[::1", "http://crm.example:99999/in", "http://:80/in", "https://crm.example:in"):
        code, _, err = run(capsys, "subscribe", "-t", "acme", "--ns", "salla", "--url", url, "--store", store)
        assert code == 2, url  # before: the last four were stored, and every delivery to them failed
        assert f"expected an http:// or https:// URL with a host (and a port from 0 to 65535), found {url!r}" in err
    code, out, _ = run(capsys, "subscriptions", "--store", store, "--format", "json")
    assert [s["url"] for s in json.loads(out)["items"]] == ["https://crm.example/in"]


def test_events_pages_with_the_printed_cursor(capsys: pytest.CaptureFixture[str], store: str) -> None:
    receive(store, EXAMPLE, "order.created", "customer.created")
    code, out, _ = run(capsys, "events", "-t", "acme", "--limit", "1", "--store", store, "--format", "json")
    assert code == 0
    first = json.loads(out)
    assert [e["event"] for e in first["items"]] == ["order.created"]
    code, out, _ = run(capsys, "events", "-t", "acme", "--after", first["next"], "--store", store, "--format", "json")
    assert [e["event"] for e in json.loads(out)["items"]] == ["customer.created"]
    code, out, _ = run(capsys, "events", "-t", "acme", "--store", store)
    assert code == 0
    assert "order.created" in out
    assert "next cursor: 2" in out


def test_deliveries_lists_what_became_of_each_delivery(capsys: pytest.CaptureFixture[str], store: str) -> None:
    receive(store, EXAMPLE, "order.created")
    code, out, _ = run(capsys, "deliveries", "--store", store, "--format", "json")
    assert code == 0
    (row,) = json.loads(out)["items"]
    assert (row["event"], row["status"], row["attempts"], row["tenant"]) == ("order.created", "processed", 1, "acme")
    assert run(capsys, "deliveries", "--status", "nonsense", "--store", store)[0] == 2


def test_a_record_dead_letter_is_replayed_through_the_current_definition(
    capsys: pytest.CaptureFixture[str], store: str, tmp_path: Path
) -> None:
    installation = install(store)
    product = {"id": 77, "name": None, "price": {"amount": 10, "currency": "SAR"}}
    with Runtime.open(store) as runtime:
        letter = runtime.store.add_dead_letter(
            installation.id, kind="record", source="products", payload=product, reason="name: required field missing"
        )
    code, out, _ = run(capsys, "deadletters", "list", "--store", store, "--format", "json")
    assert [(d["id"], d["kind"], d["tenant"]) for d in json.loads(out)["items"]] == [(str(letter), "record", "acme")]
    code, out, _ = run(capsys, "deadletters", "show", letter, "--store", store)
    assert json.loads(out)["payload"] == product

    code, out, _ = run(capsys, "deadletters", "replay", letter, "--definition", EXAMPLE, "--store", store)
    assert code == 1
    assert "failed again" in out
    with Runtime.open(store) as runtime:
        still = runtime.store.get_dead_letter(letter)
        assert still is not None
        assert still.replayed_at is None
        assert "name" in still.reason

    fixed = example()
    fixed["sync"]["resources"]["products"]["apiMapping"]["name"] = {"path": "name", "default": "(unnamed)"}
    definition = write_definition(tmp_path, fixed)
    code, out, _ = run(capsys, "deadletters", "replay", letter, "--definition", definition, "--store", store)
    assert code == 0, out
    assert "replayed" in out
    with Runtime.open(store) as runtime:
        stored = runtime.store.get_record(installation.id, "core:product", "77")
        assert stored is not None
        assert stored.data["name"] == "(unnamed)"
    assert json.loads(run(capsys, "deadletters", "list", "--store", store, "--format", "json")[1])["items"] == []
    code, out, _ = run(capsys, "deadletters", "list", "--all", "--store", store, "--format", "json")
    assert json.loads(out)["items"][0]["replayedAt"] is not None
    assert run(capsys, "deadletters", "replay", letter, "--definition", definition, "--store", store)[0] == 2


def test_a_webhook_dead_letter_is_processed_again_with_the_fixed_definition(
    capsys: pytest.CaptureFixture[str], store: str, tmp_path: Path
) -> None:
    broken = example()
    broken["sync"]["webhooks"]["handlers"]["order.created"]["mapping"]["code"] = "$.data.nope"
    receive(store, write_definition(tmp_path, broken, "broken.json"), "order.created")
    code, out, _ = run(capsys, "deliveries", "--status", "dead", "--store", store, "--format", "json")
    (dead,) = json.loads(out)["items"]
    assert dead["event"] == "order.created"
    with Runtime.open(store) as runtime:
        (letter,) = runtime.store.list_dead_letters()
    code, _, err = run(capsys, "deadletters", "replay", letter.id, "-d", EXAMPLE, "--store", store)
    assert code == 2
    assert f"deliveries replay {dead['id']}" in err  # one way to replay a delivery
    code, out, _ = run(capsys, "deliveries", "replay", dead["id"], "-d", EXAMPLE, "--yes", "--store", store,
                       "--format", "json")  # fmt: skip
    assert code == 0, out
    assert json.loads(out)["report"]["processed"] == 1
    code, out, _ = run(capsys, "events", "-t", "acme", "--store", store, "--format", "json")
    assert [e["event"] for e in json.loads(out)["items"]] == ["order.created"]
    code, out, _ = run(capsys, "deliveries", "--store", store, "--format", "json")
    assert [r["status"] for r in json.loads(out)["items"]] == ["processed"]


def test_dead_letters_never_show_credential_values(capsys: pytest.CaptureFixture[str], store: str) -> None:
    installation = install(store, credentials={"accessToken": "tok-very-secret-123"})
    with Runtime.open(store) as runtime:
        letter = runtime.store.add_dead_letter(
            installation.id,
            kind="record",
            source="orders",
            payload={"id": 1, "echo": "Bearer tok-very-secret-123"},
            reason="the provider echoed tok-very-secret-123",
        )
    for args in (("show", letter), ("list",)):
        code, out, err = run(capsys, "deadletters", *args, "--store", store)
        assert code == 0
        assert "tok-very-secret-123" not in out + err
    assert "***" in run(capsys, "deadletters", "show", letter, "--store", store)[1]


def test_an_unknown_dead_letter_is_a_usage_error(capsys: pytest.CaptureFixture[str], store: str) -> None:
    install(store)
    code, _, err = run(capsys, "deadletters", "show", 999, "--store", store)
    assert code == 2
    assert "no dead letter 999" in err


@pytest.mark.parametrize("id", ["0", str(2**53), "99999999999999999999999"])
@pytest.mark.parametrize(
    "command", [("deadletters", "show"), ("deadletters", "replay", "-d", EXAMPLE), ("inbox", "assign", "-d", EXAMPLE)]
)
def test_a_row_id_out_of_range_is_a_usage_error_not_an_internal_one(
    capsys: pytest.CaptureFixture[str], store: str, command: tuple[str, ...], id: str
) -> None:
    install(store)  # a store to look in: the id is refused before it is read
    extra = ("--installation", "x") if command[0] == "inbox" else ()
    code, _, err = run(capsys, *command, *extra, "--store", store, "--", id)
    assert code == 2, err  # before: exit 1, "internal error: OverflowError" for ids past SQLite's 64 bits
    assert "Invalid value for 'ID'" in err
    assert "internal error" not in err
