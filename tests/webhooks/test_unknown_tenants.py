"""Unknown-tenant deliveries (D24a): nothing lost, nothing flooded; refusals leave a metadata-only trail."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import orjson
import pytest

from miniapp_sync.cli import main
from miniapp_sync.sandbox.webhooks import sign
from miniapp_sync.store.rejections import Rejections
from miniapp_sync.testing import FakeClock
from miniapp_sync.webhooks.concurrency import inline
from miniapp_sync.webhooks.rejections import RejectionTrail

from .conftest import ADMIN, EXAMPLE, KEY, LIMIT, SECRET, Harness

ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}
UNKNOWN_SHOP = 999


def signed(body: dict[str, object], secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    raw = orjson.dumps(body)
    return raw, {"Content-Type": "application/json", "X-Salla-Signature": sign(secret, raw)}


def for_unknown_shop(harness: Harness) -> tuple[bytes, dict[str, str]]:
    """A real order.created of the sandbox, signed with the app secret, naming a store nobody installed."""
    raw, _ = harness.sandbox.webhook("order.created")
    return signed({**orjson.loads(raw), "merchant": UNKNOWN_SHOP})


async def test_an_unmatched_delivery_verified_by_the_app_secret_is_assigned_over_the_api_and_processed(
    harness: Harness,
) -> None:
    raw, headers = for_unknown_shop(harness)
    assert (await harness.post(raw, headers))[0] == 200
    (row,) = harness.rows()
    assert (row.status, row.installation_id, row.event) == ("unmatched", None, None)
    late = harness.install("latecomer", metadata={"storeId": "12345"})  # the store's id was set wrong
    url = f"{harness.base_url}/api/inbox/{row.id}/assign"
    async with harness.http.post(url, json={"installation": late.id}) as response:
        assert response.status == 401  # behind the admin token
    async with harness.http.post(url, json={"installation": late.id}, headers=ADMIN_HEADERS) as response:
        assert response.status == 202
        answer = await response.json()
    assert (answer["status"], answer["event"], answer["installationId"]) == ("pending", "order.created", late.id)
    await harness.process()
    assert harness.rows()[0].status == "done"
    order_id = orjson.loads(raw)["data"]["id"]
    assert harness.record(late, "ecommerce:orders", order_id) is not None
    async with harness.http.post(url, json={"installation": late.id}, headers=ADMIN_HEADERS) as response:
        assert response.status == 409  # only unmatched rows are assigned
        assert "not unmatched" in (await response.json())["error"]["message"]
    async with harness.http.post(url, json={"tenant": "x"}, headers=ADMIN_HEADERS) as response:
        assert response.status == 400
        assert (await response.json())["error"]["field"] == "installation"


async def test_inbox_assign_on_the_command_line_processes_the_delivery(
    harness: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINIAPP_SYNC_SECRET_KEY", KEY["MINIAPP_SYNC_SECRET_KEY"])
    raw, headers = for_unknown_shop(harness)
    assert (await harness.post(raw, headers))[0] == 200
    (row,) = harness.rows()
    late = harness.install("latecomer", metadata={})
    store = ["--store", str(tmp_path / "store.sqlite")]
    # The CLI runs its own event loop: in a thread, as beside a running server.
    args = ["inbox", "assign", str(row.id), "--installation", late.id, "-d", str(EXAMPLE), *store]
    code = await asyncio.to_thread(main, [*args, "--format", "json"])
    shown = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (shown["status"], shown["installationId"], shown["event"]) == ("processed", late.id, "order.created")
    assert harness.record(late, "ecommerce:orders", orjson.loads(raw)["data"]["id"]) is not None
    code = await asyncio.to_thread(main, args)
    assert code == 2
    assert "is done, not unmatched" in capsys.readouterr().err


async def test_unsigned_bodies_for_unknown_shops_are_not_stored_but_leave_a_rejection_row_and_get_404(
    harness: Harness,
) -> None:
    harness.install()
    body = orjson.dumps({"event": "order.created", "merchant": UNKNOWN_SHOP, "data": {"id": 1, "pad": "x" * 60_000}})
    for _ in range(100):
        assert (await harness.post(body, {"Content-Type": "application/json"}))[0] == 404
    assert harness.rows() == []  # on main: 100 unmatched rows holding every body
    rejections = Rejections(harness.runtime.store).list(limit=1000)
    assert len(rejections) == 100
    assert {(r.status, r.size) for r in rejections} == {(404, len(body))}
    assert "not verified, so not kept" in rejections[0].reason


async def test_bad_signatures_and_oversized_bodies_leave_rejection_rows_listed_by_deliveries_status_rejected(
    harness: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINIAPP_SYNC_SECRET_KEY", KEY["MINIAPP_SYNC_SECRET_KEY"])
    installation = harness.install()
    raw, headers = harness.sandbox.webhook("order.created")
    assert (await harness.post(raw, {**headers, "X-Salla-Signature": "0" * 64}))[0] == 401
    harness.clock.advance(1)
    assert (await harness.post(b"x" * (LIMIT + 1), {}, installation=installation.id))[0] == 413
    assert harness.rows() == []
    store = ["--store", str(tmp_path / "store.sqlite"), "--format", "json"]
    code = await asyncio.to_thread(main, ["deliveries", "--status", "rejected", *store])
    assert code == 0
    shown = json.loads(capsys.readouterr().out)["items"]  # newest first
    assert [(r["status"], r["reason"], r["tenant"]) for r in shown] == [
        ("rejected", "too_large", "acme"),
        ("rejected", "bad_signature", None),
    ]
    assert "signature does not verify" in shown[1]["error"]
    details = []
    for refused in shown:
        assert await asyncio.to_thread(main, ["deliveries", "show", refused["id"], *store]) == 0
        details.append(json.loads(capsys.readouterr().out))
    assert [d["route"] for d in details] == [
        f"/miniapps/salla/webhooks/{installation.id}",
        "/miniapps/salla/webhooks",
    ]
    assert details[1]["headers"]["x-salla-signature"] == "[redacted]"  # never a signature (D30)
    assert details[1]["digest"] is not None
    assert details[1]["body"] is None
    assert details[0]["digest"] is None  # a 413 body is never read whole


async def test_the_rejection_trail_is_capped_per_ns_and_hour(harness: Harness) -> None:
    clock = FakeClock()
    trail = RejectionTrail(harness.runtime.store, clock, inline, per_hour=3)

    async def refuse(ns: str) -> bool:
        return await trail.record(ns, None, 404, "unknown", size=1, body=b"x", headers={})

    assert [await refuse("salla") for _ in range(5)] == [True, True, True, False, False]
    assert await refuse("zid")  # another ns has its own cap
    clock.advance(3600)
    assert await refuse("salla")  # a new hour
    assert len(Rejections(harness.runtime.store).list()) == 5


async def test_an_unknown_installation_in_the_url_is_refused_without_storing_the_url_text(harness: Harness) -> None:
    raw, headers = harness.sandbox.webhook("order.created")
    headers = {**headers, "X-Salla-Signature": "0" * 64}  # nobody can verify it
    assert (await harness.post(raw, headers, installation="x" * 200))[0] == 404
    (rejection,) = Rejections(harness.runtime.store).list()
    assert (rejection.installation_id, rejection.route) == (None, "/miniapps/salla/webhooks/<not an installation id>")
    assert "no installation" in rejection.reason
