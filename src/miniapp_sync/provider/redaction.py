"""Keep secrets out of messages (D30): URLs, body previews and exception text pass through here.

A query parameter is secret when its name says so (``access_token``, ``consumer_key``,
``client_secret``, ``signature``, OAuth's ``code`` …); known secret values (credentials,
``sensitiveKeys``) are masked wherever they appear, raw or URL-encoded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import quote, quote_plus, unquote_plus

__all__ = ["MASK", "Redactor", "is_secret_name"]

MASK: Final = "***"

# A name is secret if one of its words is one of these (``consumer_key``, ``accessToken``) ...
_SECRET_WORDS: Final = frozenset(
    {
        "apikey",
        "credential",
        "credentials",
        "hmac",
        "jwt",
        "key",
        "passwd",
        "password",
        "pwd",
        "secret",
        "signature",
        "token",
    }
)
# ... or if it is exactly one of these: as words they are too common (``country_code``).
_SECRET_NAMES: Final = frozenset({"code", "sig", "auth", "authorization", "session", "sessionid"})

_CAMEL: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD_SPLIT: Final = re.compile(r"[^a-z0-9]+")
_QUERY_PAIR: Final = re.compile(r"([?&;])([^=&#;]+)=([^&#;]*)")
_USERINFO: Final = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#@\s]*@")
_BODY_SCAN: Final = 64 * 1024
# A URL in prose ends before trailing punctuation ("failed at https://…/x?a=1: timeout").
_URL_IN_TEXT: Final = re.compile(r"https?://[^\s'\"<>]*[^\s'\"<>.,:;!?)\]}]")
_JSON_SECRET: Final = re.compile(r'"([A-Za-z0-9_.\-]+)"(\s*:\s*)"((?:[^"\\]|\\.)*)"')


def is_secret_name(name: str) -> bool:
    """Return whether a parameter or field name looks like it holds a secret."""
    lowered = name.lower()
    if lowered in _SECRET_NAMES:
        return True
    words = _WORD_SPLIT.split(_CAMEL.sub("_", name).lower())
    return any(word in _SECRET_WORDS for word in words)


def _redact_query(url: str) -> str:
    head, sep, query = url.partition("?")
    if not sep:
        return url

    def mask(match: re.Match[str]) -> str:
        lead, name, value = match.groups()
        return f"{lead}{name}={MASK if is_secret_name(unquote_plus(name)) else value}"

    return head + _QUERY_PAIR.sub(mask, "?" + query)


class Redactor:
    """Mask secret query parameters, credentials in URLs and known secret values in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._forms: set[str] = set()
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Mask these values too from now on: secrets received at run time (a refreshed token, D31b)."""
        before = len(self._forms)
        for secret in secrets:
            if secret:
                self._forms.update((secret, quote(secret, safe=""), quote_plus(secret)))
        if len(self._forms) != before:
            # Longest first, so a secret that contains another is masked whole.
            self._secrets = sorted(self._forms, key=len, reverse=True)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every form of every known secret value (raw and URL-encoded), longest first."""
        return tuple(self._secrets)

    def values(self, text: str) -> str:
        """Mask every known secret value in ``text``."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def url(self, url: str) -> str:
        """Return ``url`` fit for a message: userinfo, secret query values and known secrets masked."""
        return self.values(_redact_query(_USERINFO.sub(rf"\g<1>{MASK}@", url)))

    def text(self, text: str) -> str:
        """Return free text (an exception message, a body) with URLs, secret JSON fields and secrets masked."""
        text = _URL_IN_TEXT.sub(lambda m: self.url(m.group(0)), text)

        def mask(match: re.Match[str]) -> str:
            name, colon, value = match.groups()
            return f'"{name}"{colon}"{MASK}"' if is_secret_name(name) and value else match.group(0)

        return self.values(_JSON_SECRET.sub(mask, text))

    def body(self, body: bytes, limit: int = 120) -> str:
        """Return the start of a response body as one redacted line of at most ``limit`` characters."""
        # Redact before cutting: cutting first could leave half a secret that no longer matches.
        text = self.text(" ".join(body[:_BODY_SCAN].decode("utf-8", errors="replace").split()))
        return text if len(text) <= limit else text[: limit - 1] + "…"
