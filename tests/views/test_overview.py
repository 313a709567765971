"""The overview's figures from a real store: per MiniApp, within the runs window, backlog age on the clock."""

from __future__ import annotations

from pathlib import Path

from miniapp_sync.store import Inbox, InboxEntry, Store
from miniapp_sync.store.rejections import Rejection, Rejections
from miniapp_sync.testing import FakeClock
from miniapp_sync.views import timestamp, to_json
from miniapp_sync.views.overview import RUNS_WINDOW, overview


def test_the_overview_counts_each_miniapp_apart_and_only_a_day_of_runs(tmp_path: Path) -> None:
    clock = FakeClock(start=1_767_225_600.0)
    with Store.open(str(tmp_path / "store.sqlite"), clock=clock) as store:
        bare = {"credentials": b"", "metadata": {}, "user_input": {}}
        salla = store.save_installation("acme", "salla", status="connected", **bare)
        store.save_installation("beta", "salla", status="error", **bare)
        zid = store.save_installation("acme", "zid", status="connected", **bare)
        old = store.start_run(salla.id, "products")
        store.finish_run(old.id, status="failed", stats={}, error="boom")
        clock.advance(RUNS_WINDOW + 60)  # that run is now older than a day
        store.finish_run(store.start_run(salla.id, "orders").id, status="succeeded", stats={})
        store.start_run(zid.id, "products")  # still running
        Inbox(store).add([InboxEntry("salla", salla.id, "order.created", "t-1", "pending", b"{}")])
        received = clock.now()
        clock.advance(90)
        Inbox(store).add([InboxEntry("salla", salla.id, "order.created", "t-2", "pending", b"{}")])
        Rejections(store).add(Rejection("zid", "/miniapps/zid/webhooks", None, 401, "bad_signature", 2, None, {}, 0))
        Rejections(store).add(Rejection("zid", "/miniapps/zid/webhooks", None, 401, "bad_signature", 2, None, {}, 0))
        clock.advance(10)
        view = to_json(overview(store, ["salla", "zid", "woo"]))
    by_ns = {m["ns"]: m for m in view["miniapps"]}
    assert list(by_ns) == ["salla", "woo", "zid"]
    assert by_ns["salla"]["installations"] == {"connected": 1, "error": 1}
    assert by_ns["salla"]["runsLast24h"] == {"succeeded": 1}
    assert by_ns["salla"]["inboxBacklog"] == 2
    assert by_ns["salla"]["oldestUnprocessedAgeSeconds"] == 100.0
    assert by_ns["salla"]["oldestUnprocessedAt"] == timestamp(received)
    assert by_ns["zid"]["runsLast24h"] == {"running": 1}
    assert by_ns["zid"]["rejections"] == {"bad_signature": 2}
    assert by_ns["woo"] == {
        "ns": "woo", "installations": {}, "runsLast24h": {}, "inboxBacklog": 0, "oldestUnprocessedAt": None,
        "oldestUnprocessedAgeSeconds": None, "deadLetters": 0, "deadDeliveries": 0, "recordDeadLetters": 0,
        "rejections": {},
    }  # fmt: skip


def test_rejections_are_counted_by_the_reason_codes_the_deliveries_list_filters_by(tmp_path: Path) -> None:
    with Store.open(str(tmp_path / "store.sqlite"), clock=FakeClock()) as store:
        refused = [
            (401, "the X-Salla-Signature signature does not verify"),
            (401, "the X-Salla-Signature signature does not verify over 120 bytes"),
            (401, "stale: the delivery's time is 900 s from now, outside ±300 s"),
            (404, "no installation of salla has merchant 424242"),
            (404, "no installation of salla has merchant 525252"),
            (413, "the body is over 1048576 bytes"),
        ]
        for status, reason in refused:
            Rejections(store).add(Rejection("salla", "/miniapps/salla/webhooks", None, status, reason, 2, None, {}, 0))
        view = to_json(overview(store, ["salla"]))
    (salla,) = view["miniapps"]
    assert salla["rejections"] == {"bad_signature": 2, "stale": 1, "too_large": 1, "unknown_tenant": 2}
