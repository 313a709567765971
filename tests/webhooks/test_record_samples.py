"""serve --record-samples: verified deliveries become <event>.json samples, secrets blanked, bad ones never."""

from __future__ import annotations

import json
from pathlib import Path

from miniapp_sync.cli import main
from miniapp_sync.webhooks.samples import SampleRecorder

from .conftest import EXAMPLE, Harness


async def test_verified_deliveries_are_recorded_as_samples_that_map(harness: Harness, tmp_path: Path) -> None:
    folder = tmp_path / "samples"
    harness.service.receiver.samples = SampleRecorder(folder)
    harness.install()
    status, _ = await harness.send("order.created")
    assert status == 200
    raw, headers = harness.sandbox.webhook("customer.created")
    headers["X-Salla-Signature"] = "0" * 64
    assert (await harness.post(raw, headers))[0] == 401  # a delivery that does not verify is no sample

    assert sorted(p.name for p in folder.iterdir()) == ["order.created.json"]
    sample = json.loads((folder / "order.created.json").read_text())
    assert sample["event"] == "order.created"
    assert main(["map", str(EXAMPLE), "--input", str(folder / "order.created.json"), "--format", "json"]) == 0


def test_secret_looking_values_are_blanked(tmp_path: Path) -> None:
    path = SampleRecorder(tmp_path).record(
        "app.store.authorize", {"event": "app.store.authorize", "data": {"access_token": "t0k", "scope": "read"}}
    )
    assert json.loads(path.read_text())["data"] == {"access_token": "", "scope": "read"}
