"""Verify a delivery (D25): HMAC over the raw bytes or a header token, against every current secret.

Secrets come from the installation's credentials, then the operator's ``auth.config`` (the first
that holds a value); a value may hold several secrets for rotation, as a list or comma-separated.
Comparisons are constant-time, and a refusal never says which part failed.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping, Sequence
from typing import Any, Final

from miniapp_sync.definition.webhook_model import Verification

_DIGESTS: Final = {"hmac-sha256": ("sha256", 32), "hmac-sha1": ("sha1", 20)}


def secret_values(value: Any) -> list[str]:
    """Return the secrets a configured value holds: a list of them, or one string, comma-separated."""
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list | tuple):
        items = [str(item) for item in value if isinstance(item, str | int)]
    else:
        return []
    return [item.strip() for item in items if item.strip()]


def resolve_secrets(
    verification: Verification | None, credentials: Mapping[str, Any], config: Mapping[str, Any]
) -> tuple[bytes, ...]:
    """Return the secrets to verify with: the installation's own first, else the MiniApp-wide ones."""
    if verification is None or verification.type == "none" or not verification.secret_key:
        return ()
    for bag in (credentials, config):
        found = secret_values(bag.get(verification.secret_key))
        if found:
            return tuple(s.encode() for s in found)
    return ()


def _signature(verification: Verification, given: str, size: int) -> bytes | None:
    text = given.strip()
    prefix, sep, rest = text.partition("=")
    if sep and prefix.lower() in ("sha256", "sha1"):
        text = rest.strip()
    try:
        decoded = base64.b64decode(text, validate=True) if verification.encoding == "base64" else bytes.fromhex(text)
    except (ValueError, binascii.Error):
        return None
    return decoded if len(decoded) == size else None


def verify(
    verification: Verification | None, secrets: Sequence[bytes], raw: bytes, headers: Mapping[str, str]
) -> int | None:
    """Return the index of the secret the delivery is signed with (0 when none is required), or None."""
    if verification is None or verification.type == "none":
        return 0
    given = headers.get((verification.header_name or "").lower())
    if not given or not secrets:
        return None  # fail closed: no signature, or no secret configured to check it with
    if verification.type == "header-token":
        token = given.strip()
        candidates = [token.encode()]
        if token[:7].lower() == "bearer ":
            candidates.append(token[7:].strip().encode())
        for index, secret in enumerate(secrets):
            if any(hmac.compare_digest(c, secret) for c in candidates):
                return index
        return None
    name, size = _DIGESTS[verification.type]
    signature = _signature(verification, given, size)
    if signature is None:
        return None
    for index, secret in enumerate(secrets):
        if hmac.compare_digest(hmac.digest(secret, raw, name), signature):
            return index
    return None
