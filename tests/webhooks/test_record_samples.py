"""serve --record-samples: verified deliveries become <event>.json samples, secrets blanked, bad ones never."""

from __future__ import annotations

import json
from pathlib import Path

from miniapp_sync.cli import main
from miniapp_sync.webhooks.samples import SampleRecorder, sample_name

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


async def test_record_samples_stores_a_delivery_nested_a_thousand_deep(harness: Harness, tmp_path: Path) -> None:
    folder = tmp_path / "samples"
    harness.service.receiver.samples = SampleRecorder(folder)
    installation = harness.install()
    deep = '{"a":' * 1_000 + '"bottom"' + "}" * 1_000  # json.dumps itself would not go this deep
    body = f'{{"event": "order.created", "merchant": {harness.merchant}, "data": {{"id": 1, "deep": {deep}}}}}'.encode()
    status, _ = await harness.post(body, {"X-Salla-Signature": harness.sandbox.sign(body)})
    assert status == 200
    (row,) = harness.rows()
    assert (row.installation_id, row.event) == (installation.id, "order.created")
    assert list(folder.iterdir()) == []  # too deep to be a sample: skipped, and the delivery kept

    status, _ = await harness.send("order.created")  # recording still works for the next one
    assert status == 200
    assert [p.name for p in folder.iterdir()] == ["order.created.json"]


def test_a_sample_that_cannot_be_written_is_skipped_not_raised(tmp_path: Path) -> None:
    recorder = SampleRecorder(tmp_path / "samples")
    (tmp_path / "samples").rmdir()  # the folder went away under the server
    assert recorder.record("order.created", {"event": "order.created"}) is None


def test_event_names_become_one_file_name_inside_the_folder() -> None:
    assert sample_name("order.created") == "order.created.json"
    assert sample_name("orders/create") == "orders_create.json"
    assert sample_name("../../loot/creds") == ".._.._loot_creds.json"
    assert sample_name("/etc/passwd") == "_etc_passwd.json"
    assert sample_name("..") == "...json"
