"""Verification on its own: encodings, prefixes, lengths, rotation, tokens; constant-time and fail-closed."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from miniapp_sync.definition.webhook_model import Verification
from miniapp_sync.webhooks.verification import resolve_secrets, secret_values, verify

BODY = b'{"event":"order.created","data":{"id":1}}'


def hmac_hex(secret: bytes, algorithm: str = "sha256") -> str:
    return hmac.new(secret, BODY, algorithm).hexdigest()


def scheme(type: str = "hmac-sha256", encoding: str = "hex") -> Verification:
    return Verification.model_validate(
        {"type": type, "headerName": "X-Sig", "secretKey": "webhookSecret", "encoding": encoding}
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (hmac_hex(b"s"), 0),
        ("sha256=" + hmac_hex(b"s"), 0),
        ("SHA256=" + hmac_hex(b"s").upper(), 0),
        (" " + hmac_hex(b"s") + " ", 0),
        (hmac_hex(b"s")[:-2], None),  # wrong length
        (hmac_hex(b"s") + "00", None),  # wrong length
        (hmac_hex(b"other"), None),
        ("not hex at all", None),
        ("", None),
    ],
)
def test_hex_sha256(header: str, expected: int | None) -> None:
    assert verify(scheme(), (b"s",), BODY, {"x-sig": header}) == expected


def test_sha1_and_base64_as_woocommerce_and_shopify_send_them() -> None:
    digest = base64.b64encode(hmac.new(b"s", BODY, hashlib.sha1).digest()).decode()
    assert verify(scheme("hmac-sha1", "base64"), (b"s",), BODY, {"x-sig": digest}) == 0
    assert verify(scheme("hmac-sha1", "base64"), (b"s",), BODY, {"x-sig": "sha1=" + digest}) == 0
    assert verify(scheme("hmac-sha1", "base64"), (b"s",), BODY, {"x-sig": digest[:-2]}) is None
    sha256 = base64.b64encode(hmac.new(b"s", BODY, hashlib.sha256).digest()).decode()
    assert verify(scheme("hmac-sha1", "base64"), (b"s",), BODY, {"x-sig": sha256}) is None  # a sha256 length


def test_the_position_of_the_matching_secret_is_returned() -> None:
    secrets = (b"new", b"old")
    assert verify(scheme(), secrets, BODY, {"x-sig": hmac_hex(b"old")}) == 1
    assert verify(scheme(), secrets, BODY, {"x-sig": hmac_hex(b"new")}) == 0


def test_no_header_or_no_secret_fails_closed() -> None:
    assert verify(scheme(), (b"s",), BODY, {}) is None
    assert verify(scheme(), (), BODY, {"x-sig": hmac_hex(b"")}) is None


def test_none_verifies_everything() -> None:
    assert verify(None, (), BODY, {}) == 0
    assert verify(Verification(type="none"), (), BODY, {}) == 0


def test_a_header_token_matches_whole_or_after_bearer() -> None:
    token = scheme("header-token")
    assert verify(token, (b"t0k",), BODY, {"x-sig": "t0k"}) == 0
    assert verify(token, (b"t0k",), BODY, {"x-sig": "Bearer t0k"}) == 0
    assert verify(token, (b"t0k",), BODY, {"x-sig": "Bearer t0"}) is None
    assert verify(token, (b"t0k",), BODY, {"x-sig": "t0kk"}) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("one", ["one"]),
        ("one, two ,", ["one", "two"]),
        (["one", "two", ""], ["one", "two"]),
        ("", []),
        (None, []),
        ({"a": 1}, []),
    ],
)
def test_secret_values(value: object, expected: list[str]) -> None:
    assert secret_values(value) == expected


def test_the_installation_s_secret_comes_first_then_the_miniapp_s() -> None:
    v = scheme()
    assert resolve_secrets(v, {"webhookSecret": "own"}, {"webhookSecret": "global"}) == (b"own",)
    assert resolve_secrets(v, {"webhookSecret": ""}, {"webhookSecret": "a,b"}) == (b"a", b"b")
    assert resolve_secrets(v, {}, {}) == ()
