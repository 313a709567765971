"""Placeholders resolve from the right bags, keep types when whole, and never send an empty value."""

from __future__ import annotations

import base64

import pytest

from miniapp_sync.errors import InstallationError
from miniapp_sync.templating import Context, encode_basic, fill_id, render, render_headers

CONTEXT = Context(
    credentials={"accessToken": "tok", "storeId": "from-credentials"},
    metadata={"storeId": "from-metadata", "uid": 42},
    user_input={"storeUrl": "https://shop.example.com"},
    config={"client_id": "cid", "webhookSecret": ""},
    system={"webhookUrl": "https://hooks.example.com/miniapps/salla/webhooks"},
)


def test_credentials_win_over_metadata() -> None:
    assert render("[[storeId]]", CONTEXT) == "from-credentials"
    assert render("[[uid]]", CONTEXT) == 42  # metadata, type kept


def test_user_placeholders_never_read_credentials() -> None:
    with pytest.raises(InstallationError, match=r"unresolved placeholder \{\{accessToken\}\}"):
        render("{{accessToken}}", CONTEXT)


def test_user_placeholders_read_input_config_system_and_metadata() -> None:
    assert render("{{storeUrl}}/wp-json", CONTEXT) == "https://shop.example.com/wp-json"
    assert render({"id": "{{client_id}}", "hook": "{{webhookUrl}}", "u": "{{uid}}"}, CONTEXT) == {
        "id": "cid",
        "hook": "https://hooks.example.com/miniapps/salla/webhooks",
        "u": 42,
    }


def test_whole_value_keeps_type_embedded_is_text() -> None:
    context = Context(user_input={"ids": [1, 2], "n": 3.0})
    assert render("{{ids}}", context) == [1, 2]
    assert render("n={{n}}", context) == "n=3"


def test_empty_config_value_is_unresolved_not_empty() -> None:
    with pytest.raises(InstallationError) as caught:
        render({"headers": {"X-Secret": "{{webhookSecret}}"}}, CONTEXT, "auth.get_token")
    assert "auth.get_token.headers.X-Secret" in str(caught.value)
    assert "'webhookSecret'" in str(caught.value)


def test_unresolved_credential_names_key_and_place_without_values() -> None:
    with pytest.raises(InstallationError) as caught:
        render_headers({"Authorization": "Bearer [[refreshTokn]]"}, CONTEXT, "sync.headers")
    message = str(caught.value)
    assert "[[refreshTokn]]" in message
    assert "sync.headers.Authorization" in message
    assert "tok" not in message.replace("refreshTokn", "")


def test_basic_auth_is_encoded_after_resolution() -> None:
    context = Context(credentials={"consumerKey": "ck_1", "consumerSecret": "cs_2"})
    headers = render_headers({"Authorization": "Basic [[consumerKey]]:[[consumerSecret]]"}, context)
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"ck_1:cs_2").decode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Basic key:", "Basic " + base64.b64encode(b"key:").decode()),
        ("Basic QWxhZGRpbg==", "Basic QWxhZGRpbg=="),
        ("Bearer a:b", "Bearer a:b"),
    ],
)
def test_encode_basic(value: str, expected: str) -> None:
    assert encode_basic(value) == expected


def test_fill_id_quotes_the_id() -> None:
    assert fill_id("/products/{id}", 17) == "/products/17"
    assert fill_id("/p/{id}", "a/b c") == "/p/a%2Fb%20c"
