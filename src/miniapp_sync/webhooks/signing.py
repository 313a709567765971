"""Trigger events are signed the Standard Webhooks way, so any subscriber library verifies them.

Each POST carries ``webhook-id`` (the event id: the same on every retry, for de-duplication),
``webhook-timestamp`` (Unix seconds of the attempt) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``), as https://www.standardwebhooks.com
specifies; a subscriber calls ``standardwebhooks.Webhook(secret).verify(body, headers)``.

Secrets. A Standard Webhooks secret is ``whsec_`` + the base64 of the key bytes. A subscription
secret given in that form is used as such. Any other secret (those of subscriptions made before
this scheme, or a passphrase given with ``--secret``) keeps working unchanged: its UTF-8 bytes are
the key, and the subscriber verifies with ``whsec_`` + base64 of those bytes, which
:func:`verification_secret` returns and ``subscribe`` prints. New generated secrets are
``whsec_`` + 32 random bytes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets

PREFIX = "whsec_"


class SecretError(ValueError):
    """A subscription secret that cannot be a signing key."""


def new_secret() -> str:
    """Return a fresh Standard Webhooks secret."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_key(secret: str) -> bytes:
    """Return the HMAC key of a subscription secret (see the module docstring for the mapping)."""
    if not secret:
        raise SecretError("the signing secret is empty")
    if not secret.startswith(PREFIX):
        return secret.encode()
    encoded = secret[len(PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise SecretError(f"a secret starting with {PREFIX!r} must continue in base64") from None
    if not key:
        raise SecretError(f"the signing secret has no key after {PREFIX!r}")
    return key


def verification_secret(secret: str) -> str:
    """Return the ``whsec_…`` form a subscriber library verifies deliveries signed with ``secret`` by."""
    return PREFIX + base64.b64encode(signing_key(secret)).decode()


def signed_headers(key: bytes, message_id: str, timestamp: float, raw: bytes) -> dict[str, str]:
    """Return the three Standard Webhooks headers of one delivery attempt."""
    # The specification's signature, computed here: the library's ``sign`` wants the body as text and
    # a datetime, and the round trips cost more than the HMAC (tests verify with the library).
    seconds = str(int(timestamp))
    digest = hmac.digest(key, b"%s.%s.%s" % (message_id.encode(), seconds.encode(), raw), "sha256")
    signature = "v1," + base64.b64encode(digest).decode()
    return {"webhook-id": message_id, "webhook-timestamp": seconds, "webhook-signature": signature}
