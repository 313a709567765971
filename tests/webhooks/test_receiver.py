"""The receiver over real HTTP: verification, size limit, tenants, odd bodies, duplicates (D24-D26)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from typing import Any

import orjson
import pytest

from miniapp_sync.sandbox.webhooks import sign
from miniapp_sync.store.rejections import Rejections

from .conftest import LIMIT, SECRET, Harness

UNAUTHORIZED = (401, b'{"error":"unauthorized"}')


def signed(body: dict[str, Any] | bytes, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return raw, {"Content-Type": "application/json", "X-Salla-Signature": sign(secret, raw)}


async def test_a_signed_delivery_is_stored_then_acknowledged(harness: Harness) -> None:
    installation = harness.install()
    assert await harness.send("order.created") == (200, b'{"ok":true}')
    (row,) = harness.rows()
    assert (row.status, row.installation_id, row.event) == ("pending", installation.id, "order.created")
    assert row.transaction_id == str(orjson.loads(row.body)["data"]["id"])


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param("0" * 64, id="wrong-signature"),
        pytest.param("abcd", id="wrong-length"),
        pytest.param("z" * 64, id="not-hex"),
        pytest.param("", id="empty"),
    ],
)
async def test_a_bad_signature_is_refused_without_saying_why(harness: Harness, signature: str) -> None:
    harness.install()
    raw, headers = harness.sandbox.webhook("order.created")
    assert await harness.post(raw, {**headers, "X-Salla-Signature": signature}) == UNAUTHORIZED
    assert harness.rows() == []


async def test_a_missing_signature_header_is_refused(harness: Harness) -> None:
    harness.install()
    raw, headers = harness.sandbox.webhook("order.created")
    del headers["X-Salla-Signature"]
    assert await harness.post(raw, headers) == UNAUTHORIZED


async def test_a_signature_over_other_bytes_is_refused(harness: Harness) -> None:
    harness.install()
    raw, headers = harness.sandbox.webhook("order.created")
    reserialised = orjson.dumps(orjson.loads(raw), option=orjson.OPT_INDENT_2)  # same JSON, other bytes
    assert await harness.post(reserialised, headers) == UNAUTHORIZED


async def test_a_sha256_prefixed_signature_verifies(harness: Harness) -> None:
    harness.install()
    raw, headers = harness.sandbox.webhook("order.created")
    prefixed = {**headers, "X-Salla-Signature": "sha256=" + headers["X-Salla-Signature"]}
    assert (await harness.post(raw, prefixed))[0] == 200


async def test_without_any_secret_configured_every_delivery_is_refused(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="miniapp_sync")
    harness.runtime.installations.configure("salla", {"webhookSecret": ""})
    harness.install()
    for _ in range(2):
        assert await harness.send("order.created") == UNAUTHORIZED
    warnings = [r.getMessage() for r in caplog.records if "no webhook secret" in r.getMessage()]
    assert len(warnings) == 1  # said once, not per delivery
    assert "'webhookSecret'" in warnings[0]


async def test_a_body_over_the_limit_gets_413_from_its_content_length(harness: Harness) -> None:
    harness.install()
    raw, headers = signed(b'{"event":"order.created","pad":"' + b"x" * LIMIT + b'"}')
    assert (await harness.post(raw, headers))[0] == 413
    assert harness.rows() == []


async def test_a_chunked_body_over_the_limit_gets_413_while_reading(harness: Harness) -> None:
    harness.install()

    async def chunks() -> Any:
        for _ in range(LIMIT // 1024 + 2):
            yield b"x" * 1024

    url = f"{harness.base_url}/miniapps/salla/webhooks"
    async with harness.http.post(url, data=chunks(), headers={"X-Salla-Signature": "00"}) as response:
        assert response.status == 413
    assert harness.rows() == []


async def test_a_verified_body_that_is_not_json_is_kept_and_dead_lettered(harness: Harness) -> None:
    installation = harness.install()
    raw, headers = signed(b"<xml>not json</xml>")
    status, _ = await harness.post(raw, headers, installation=installation.id)
    assert status == 200  # nothing would change on a resend: do not make the sender retry
    (row,) = harness.rows()
    assert row.status == "failed"
    (letter,) = harness.runtime.store.list_dead_letters(installation.id, kind="webhook")
    assert "not JSON" in letter.reason
    assert letter.payload["body"] == "<xml>not json</xml>"
    assert letter.payload["inboxId"] == row.id


async def test_woocommerce_s_form_encoded_ping_gets_200_and_is_recorded(harness: Harness) -> None:
    installation = harness.install()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _ = await harness.post(b"webhook_id=42", form, installation=installation.id)
    assert status == 200
    (row,) = harness.rows()
    assert (row.status, row.installation_id, row.body) == ("ping", installation.id, b"webhook_id=42")


async def test_a_replayed_delivery_gets_the_same_answer_and_is_processed_once(harness: Harness) -> None:
    installation = harness.install()
    raw, headers = harness.sandbox.webhook("order.created")
    first = await harness.post(raw, headers)
    assert await harness.post(raw, headers) == first == (200, b'{"ok":true}')
    await harness.process()
    assert await harness.post(raw, headers) == first  # after processing too
    (row,) = harness.rows()
    assert row.status == "done"
    assert harness.service.outbox.count_events("acme") == 1
    assert harness.runtime.store.count_records(installation.id, "ecommerce:orders") == 1


async def test_the_dedupe_key_is_scoped_by_installation(harness: Harness) -> None:
    first = harness.install("acme")
    second = harness.install("globex", metadata={"storeId": "777"})
    raw, headers = harness.sandbox.webhook("order.created")
    other, other_headers = signed({**orjson.loads(raw), "merchant": 777})
    assert (await harness.post(raw, headers))[0] == 200
    assert (await harness.post(other, other_headers))[0] == 200
    assert {r.installation_id for r in harness.rows()} == {first.id, second.id}
    assert len({r.transaction_id for r in harness.rows()}) == 1


async def test_an_unknown_store_gets_2xx_and_is_kept_as_unmatched(harness: Harness) -> None:
    harness.install()
    raw, headers = signed({"event": "order.created", "merchant": 999, "data": {"id": 1}})
    assert await harness.post(raw, headers) == (200, b'{"ok":true}')
    (row,) = harness.rows()
    assert (row.status, row.installation_id) == ("unmatched", None)
    assert row.error is not None
    assert "storeId '999'" in row.error


async def test_an_unknown_store_that_does_not_verify_gets_404_and_leaves_only_a_rejection_row(
    harness: Harness,
) -> None:
    raw, headers = signed({"event": "order.created", "merchant": 999, "data": {"id": 1}}, secret="forged")
    assert (await harness.post(raw, headers))[0] == 404
    assert harness.rows() == []
    (rejection,) = Rejections(harness.runtime.store).list()
    assert (rejection.status, rejection.size, rejection.route) == (404, len(raw), "/miniapps/salla/webhooks")
    assert "storeId '999'" in rejection.reason
    assert rejection.headers["x-salla-signature"] == "[redacted]"


async def test_an_event_with_neither_handler_nor_trigger_is_acknowledged_and_ignored(harness: Harness) -> None:
    harness.install()
    raw, headers = signed({"event": "app.installed", "merchant": harness.merchant, "data": {"id": 5}})
    assert (await harness.post(raw, headers))[0] == 200
    (row,) = harness.rows()
    assert (row.status, row.event) == ("ignored", "app.installed")
    await harness.process()
    assert harness.rows()[0].status == "ignored"


async def test_a_delivery_on_a_tenant_s_url_that_names_another_store_writes_nowhere(harness: Harness) -> None:
    mine = harness.install("acme", metadata={"storeId": "111"})
    theirs = harness.install("globex")  # the sandbox's merchant: the body names this store
    raw, headers = harness.sandbox.webhook("order.created")
    assert (await harness.post(raw, headers, installation=mine.id))[0] == 200
    await harness.process()
    (row,) = harness.rows()
    assert (row.status, row.installation_id) == ("unmatched", None)
    for installation in (mine, theirs):
        assert harness.runtime.store.count_records(installation.id) == 0


async def test_a_tenant_s_own_secret_cannot_sign_for_another_store(harness: Harness) -> None:
    harness.serve(lambda d: d["auth"]["config"].update(webhookSecret=""))
    harness.install("acme", metadata={"storeId": "111"}, credentials={"webhookSecret": "acme-secret"})
    harness.install("globex", metadata={"storeId": "222"}, credentials={"webhookSecret": "globex-secret"})
    raw, headers = signed({"event": "order.created", "merchant": 222, "data": {"id": 1}}, secret="acme-secret")
    assert await harness.post(raw, headers) == UNAUTHORIZED
    raw, headers = signed({"event": "order.created", "merchant": 222, "data": {"id": 1}}, secret="globex-secret")
    assert (await harness.post(raw, headers))[0] == 200


async def test_a_per_tenant_url_with_its_installation_id_is_used(harness: Harness) -> None:
    installation = harness.install()
    assert (await harness.send("order.created", installation=installation.id))[0] == 200
    assert harness.rows()[0].installation_id == installation.id
    assert (await harness.send("order.created", installation="no-such-installation"))[0] == 200
    assert harness.rows()[1].status == "unmatched"


@pytest.mark.parametrize("configured", ["old-secret, new-secret", ["old-secret", "new-secret"]])
async def test_during_a_rotation_both_secrets_verify(harness: Harness, configured: Any) -> None:
    harness.runtime.installations.configure("salla", {"webhookSecret": configured})
    harness.install()
    for secret in ("old-secret", "new-secret"):
        raw, headers = signed({"event": "order.created", "merchant": harness.merchant, "data": {"id": secret}}, secret)
        assert (await harness.post(raw, headers))[0] == 200
    raw, headers = signed({"event": "order.created", "merchant": harness.merchant, "data": {"id": 3}}, "other")
    assert await harness.post(raw, headers) == UNAUTHORIZED
    metrics = (await (await harness.http.get(f"{harness.base_url}/metrics")).read()).decode()
    assert 'miniapp_sync_webhook_secret_matches_total{ns="salla",position="1"} 1.0' in metrics


async def test_a_header_token_is_compared_whole_or_after_bearer(harness: Harness) -> None:
    def token(document: dict[str, Any]) -> None:
        document["webhook"]["verification"] = {"type": "header-token", "headerName": "Authorization", "secretKey": "t"}
        document["auth"]["config"]["t"] = ""
        document["auth"]["sensitiveKeys"].append("t")

    harness.serve(token)
    harness.runtime.installations.configure("salla", {"t": "the-token"})
    harness.install()
    raw = orjson.dumps({"event": "order.created", "merchant": harness.merchant, "data": {"id": 9}})
    for value, status in (("Bearer the-token", 200), ("the-token", 200), ("Bearer other", 401), ("the-token2", 401)):
        assert (await harness.post(raw, {"Authorization": value}))[0] == status, value


async def test_woocommerce_style_base64_sha1_signature_and_header_event(harness: Harness) -> None:
    def woo(document: dict[str, Any]) -> None:
        document["webhook"]["verification"] = {
            "type": "hmac-sha1",
            "headerName": "X-WC-Webhook-Signature",
            "secretKey": "webhookSecret",
            "encoding": "base64",
        }
        document["webhook"]["eventExtraction"] = {"source": "header", "path": "X-WC-Webhook-Topic"}
        document["webhook"]["tenantExtraction"] = {"source": "header", "path": "X-WC-Webhook-Source", "matchKey": "url"}

    harness.serve(woo)
    installation = harness.install(metadata={"url": "https://shop.example"})
    raw = orjson.dumps({"id": 1, "event": "ignored: the topic header names it"})
    digest = base64.b64encode(hmac.new(SECRET.encode(), raw, hashlib.sha1).digest()).decode()
    headers = {"X-WC-Webhook-Signature": digest, "X-WC-Webhook-Topic": "order.created"}
    headers["X-WC-Webhook-Source"] = "https://shop.example"
    assert (await harness.post(raw, headers))[0] == 200
    (row,) = harness.rows()
    assert (row.installation_id, row.event) == (installation.id, "order.created")
    assert (await harness.post(raw, {**headers, "X-WC-Webhook-Signature": digest[:-4] + "AAA="}))[0] == 401


@pytest.mark.parametrize(("field", "expected"), [("challenge", b'{"challenge":"c-123"}'), (None, b"c-123")])
async def test_a_challenge_is_answered_after_verification(harness: Harness, field: str | None, expected: bytes) -> None:
    def challenge(document: dict[str, Any]) -> None:
        document["webhook"]["challengeResponse"] = {
            "identifyField": "type",
            "identifyValue": "url_verification",
            "challengePath": "$.challenge",
            **({"responseField": field} if field else {}),
        }

    harness.serve(challenge)
    harness.install()
    body = {"type": "url_verification", "challenge": "c-123", "merchant": harness.merchant}
    assert await harness.post(*signed(body)) == (200, expected)
    assert await harness.post(*signed(body, secret="forged")) == UNAUTHORIZED
    assert harness.rows() == []


async def test_the_configured_response_is_sent(harness: Harness) -> None:
    harness.serve(lambda d: d["webhook"].update(response={"statusCode": 202, "body": {"received": True}}))
    harness.install()
    assert await harness.send("order.created") == (202, b'{"received":true}')


async def test_an_unknown_miniapp_is_404_and_other_methods_405(harness: Harness) -> None:
    assert (await harness.post(b"{}", ns="nope"))[0] == 404
    async with harness.http.get(f"{harness.base_url}/miniapps/salla/webhooks") as response:
        assert response.status == 405


async def test_no_secret_signature_or_authorization_value_is_logged(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    harness.install()
    raw, headers = harness.sandbox.webhook("order.created")
    await harness.post(raw, headers)
    await harness.post(raw, {**headers, "X-Salla-Signature": "f" * 64, "Authorization": "Bearer very-secret-token"})
    await harness.post(*signed({"event": "order.created", "merchant": 5, "data": {}}))
    await harness.post(*signed(b"not json"), installation=harness.rows()[0].installation_id)
    await harness.process()
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records  # something was logged, and none of it is secret
    for secret in (SECRET, headers["X-Salla-Signature"], "f" * 64, "very-secret-token"):
        assert secret not in text
