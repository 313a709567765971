"""Secrets never reach a message (D30): secret-looking parameters, userinfo and known values are masked."""

from __future__ import annotations

import pytest

from miniapp_sync.provider import Redactor
from miniapp_sync.provider.redaction import is_secret_name


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("access_token", True),
        ("accessToken", True),
        ("token", True),
        ("consumer_key", True),
        ("consumer_secret", True),
        ("client_secret", True),
        ("api_key", True),
        ("apiKey", True),
        ("password", True),
        ("signature", True),
        ("X-Manager-Token", True),
        ("code", True),
        ("sig", True),
        ("page", False),
        ("per_page", False),
        ("page_info", False),
        ("country_code", False),
        ("cursor", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_a_url_keeps_its_shape_with_secret_values_masked() -> None:
    url = "https://user:pw@shop.example/wp-json/wc/v3/orders?consumer_key=ck_1&consumer_secret=cs_2&page=3&code=xyz"
    assert Redactor().url(url) == (
        "https://***@shop.example/wp-json/wc/v3/orders?consumer_key=***&consumer_secret=***&page=3&code=***"
    )


def test_known_secrets_are_masked_raw_and_url_encoded() -> None:
    redactor = Redactor(["s3cr/et+1", ""])
    assert redactor.values("token s3cr/et+1 and s3cr%2Fet%2B1 and s3cr%2Fet%2B1") == "token *** and *** and ***"


def test_free_text_masks_urls_and_secret_json_fields() -> None:
    text = 'failed at https://api.example/x?access_token=abc: {"refresh_token": "r-1", "name": "Oud"}'
    assert (
        Redactor().text(text)
        == 'failed at https://api.example/x?access_token=***: {"refresh_token": "***", "name": "Oud"}'
    )


def test_a_body_preview_is_one_short_redacted_line() -> None:
    body = b'{"error":\n  "bad token tok-123"}' + b" x" * 200
    preview = Redactor(["tok-123"]).body(body, limit=40)
    assert preview.startswith('{"error": "bad token ***"}')
    assert len(preview) == 40
    assert preview.endswith("…")
