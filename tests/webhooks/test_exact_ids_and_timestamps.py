"""Integers past 64 bits stay exact (issue #12 item 7, D26) and verification.timestampHeader (D42)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from miniapp_sync import exactjson
from miniapp_sync.cli import main
from miniapp_sync.sandbox.webhooks import sign
from miniapp_sync.store.rejections import Rejections

from .conftest import EXAMPLE, SECRET, Harness

BIG = 123456789012345678901234567890  # 30 digits: past 64 bits, and past a float's 17 digits


def signed(raw: bytes, **headers: str) -> tuple[bytes, dict[str, str]]:
    return raw, {"Content-Type": "application/json", "X-Salla-Signature": sign(SECRET, raw), **headers}


def order_with_id(harness: Harness, order_id: int) -> bytes:
    raw, _ = harness.sandbox.webhook("order.created")
    body: dict[str, Any] = orjson.loads(raw)
    body["data"]["id"] = order_id
    return exactjson.dumps(body)  # orjson cannot write it: the standard library writes it exactly


async def test_integers_above_64_bits_keep_two_orders_apart(harness: Harness) -> None:
    installation = harness.install()
    for order_id in (BIG, BIG + 1):  # differ in their last digit only
        assert (await harness.post(*signed(order_with_id(harness, order_id))))[0] == 200
    rows = harness.rows()
    assert [r.transaction_id for r in rows] == [str(BIG), str(BIG + 1)]
    await harness.process()
    assert [r.status for r in harness.rows()] == ["done", "done"]
    for order_id in (BIG, BIG + 1):
        record = harness.record(installation, "ecommerce:orders", order_id)
        assert record is not None
        assert record.code == str(order_id)


def test_exact_json_keeps_big_integers_and_leaves_common_documents_to_orjson() -> None:
    assert exactjson.loads(b'{"id": 123456789012345678901234567890, "n": 1.5}') == {"id": BIG, "n": 1.5}
    assert exactjson.loads(b'{"id": 18446744073709551615}') == {"id": 2**64 - 1}
    assert exactjson.loads(b'{"s": "12345678901234567890123"}') == {"s": "12345678901234567890123"}
    assert exactjson.dumps({"id": BIG}) == b'{"id":123456789012345678901234567890}'
    with pytest.raises(exactjson.JSONDecodeError):
        exactjson.loads(b"{not json")


def with_timestamp(harness: Harness) -> None:
    harness.serve(lambda d: d["webhook"]["verification"].update(timestampHeader="X-Salla-Timestamp"))


@pytest.mark.parametrize("skew", [0, 300, -300])
async def test_timestamp_header_within_300_seconds_is_accepted(harness: Harness, skew: int) -> None:
    with_timestamp(harness)
    harness.install()
    raw, headers = harness.sandbox.webhook("order.created")
    sent = str(int(harness.clock.now()) - skew)
    assert (await harness.post(raw, {**headers, "X-Salla-Timestamp": sent}))[0] == 200


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        pytest.param(-301, "is 301 s old", id="too-old"),
        pytest.param(+301, "is 301 s ahead", id="from-the-future"),
        pytest.param(None, "holds no Unix time", id="missing"),
        pytest.param("yesterday", "holds no Unix time", id="not-a-time"),
    ],
)
async def test_timestamp_header_outside_300_seconds_is_refused_as_stale(
    harness: Harness, header: int | str | None, reason: str
) -> None:
    with_timestamp(harness)
    harness.install()
    raw, headers = harness.sandbox.webhook("order.created")
    if isinstance(header, int):
        headers["X-Salla-Timestamp"] = str(int(harness.clock.now()) + header)
    elif header is not None:
        headers["X-Salla-Timestamp"] = header
    assert await harness.post(raw, headers) == (401, b'{"error":"unauthorized"}')
    assert harness.rows() == []
    (rejection,) = Rejections(harness.runtime.store).list()
    assert rejection.status == 401
    assert rejection.reason.startswith("stale: header X-Salla-Timestamp")
    assert reason in rejection.reason


def test_map_shows_a_30_digit_order_id_exactly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body: dict[str, Any] = orjson.loads((EXAMPLE.parent / "samples" / "order.created.json").read_bytes())
    body["data"]["id"] = BIG
    sample = tmp_path / "order.created.json"
    sample.write_bytes(exactjson.dumps(body))
    assert main(["map", str(EXAMPLE), "--input", str(sample), "--format", "json"]) == 0
    shown = capsys.readouterr().out
    assert str(BIG) in shown
    assert "e+29" not in shown
