"""Record ids in the CLI and the API: a record's key (installation, content type, code) made opaque.

A record's identity is (installation, content type, code) (D20); its id is that key as
URL-safe base64 of the three joined by a unit separator, so any code, whatever characters it
holds, fits in a path segment and comes back exactly.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

_SEPARATOR: Final = "\x1f"  # in no installation id or content type; a code keeps any it holds (split twice)


def record_id(installation_id: str, content_type: str, code: str) -> str:
    """Return a record's id in the CLI and the API."""
    raw = _SEPARATOR.join((installation_id, content_type, code)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def record_key(id: str) -> tuple[str, str, str] | None:
    """Return the (installation, content type, code) of a record id, or None when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(id + "=" * (-len(id) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    parts = raw.split(_SEPARATOR, 2)
    if len(parts) != 3 or not all(parts) or record_id(*parts) != id:
        return None
    return parts[0], parts[1], parts[2]
