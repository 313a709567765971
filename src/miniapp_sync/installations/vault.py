"""Credentials at rest: Fernet-encrypted, with the key from the environment or a 0600 key file (D29)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken

from miniapp_sync.errors import InstallationError, SealError

KEY_VARIABLE = "MINIAPP_SYNC_SECRET_KEY"


def _fernet_key(text: str) -> bytes:
    """Use a Fernet key as given; turn any other passphrase into one (SHA-256, urlsafe Base64)."""
    raw = text.strip().encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32:
            return raw
    except ValueError:
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest())


class Vault:
    """Encrypts and decrypts credential bags; the store only ever sees the ciphertext."""

    def __init__(self, key: bytes | None, *, missing: str = "") -> None:
        # No key: a command that only reads opened a store whose key file is absent. It must not
        # create one (a new key would not decrypt what is stored); only using credentials fails.
        self._raw = key
        self._key = None if key is None else Fernet(key)
        self._missing = missing

    @property
    def _fernet(self) -> Fernet:
        if self._key is None:
            raise InstallationError(self._missing)
        return self._key

    def derive(self, purpose: str) -> bytes:
        """Return a key of its own for ``purpose``, derived from the one secret (32 bytes)."""
        # A token sealed or signed for one use (an OAuth start link, a console session) can never
        # be opened as another (a credential bag), nor vice versa.
        if self._raw is None:
            raise InstallationError(self._missing)
        return hmac.new(base64.urlsafe_b64decode(self._raw), purpose.encode(), hashlib.sha256).digest()

    def _sealer(self, purpose: str) -> Fernet:
        return Fernet(base64.urlsafe_b64encode(self.derive(purpose)))

    def seal(self, purpose: str, data: Mapping[str, Any], *, now: float) -> str:
        """Return ``data`` encrypted and signed as a URL-safe token for ``purpose``, stamped ``now``."""
        return self._sealer(purpose).encrypt_at_time(orjson.dumps(dict(data)), int(now)).decode()

    def unseal(self, purpose: str, token: str, *, now: float, ttl: float) -> dict[str, Any]:
        """Return what ``seal`` sealed for ``purpose``; raise SealError unless genuine and under ``ttl`` seconds old."""
        sealer = self._sealer(purpose)
        try:
            issued = sealer.extract_timestamp(token.encode())
            if now - issued > ttl:
                raise SealError("expired", f"it expired {_ago(now - issued - ttl)} ago")
            data = orjson.loads(sealer.decrypt_at_time(token.encode(), int(ttl), int(now)))
        except (InvalidToken, ValueError, orjson.JSONDecodeError):
            raise SealError("invalid", "it is not one this installation issued, or it was altered") from None
        if not isinstance(data, dict):
            raise SealError("invalid", "it is not one this installation issued, or it was altered")
        return data

    @classmethod
    def from_environment(
        cls, key_file: Path | None, environ: Mapping[str, str] = os.environ, *, create: bool = True
    ) -> Vault:
        """Take the key from MINIAPP_SYNC_SECRET_KEY, else from (or, when ``create``, into) a 0600 key file."""
        if environ.get(KEY_VARIABLE):
            return cls(_fernet_key(environ[KEY_VARIABLE]))
        if key_file is None:
            raise InstallationError(f"set {KEY_VARIABLE}: credentials are encrypted at rest and need a key")
        if not create and not key_file.exists():
            return cls(None, missing=f"no key to read credentials with: set {KEY_VARIABLE}, or restore {key_file}")
        return cls(_key_file(key_file))

    def encrypt(self, bag: Mapping[str, Any]) -> bytes:
        """Encrypt a credential bag."""
        return self._fernet.encrypt(orjson.dumps(dict(bag)))

    def decrypt(self, blob: bytes) -> dict[str, Any]:
        """Decrypt a credential bag; a wrong key is a clear error, not a crash."""
        if not blob:
            return {}
        try:
            bag: dict[str, Any] = orjson.loads(self._fernet.decrypt(blob))
        except InvalidToken:
            raise InstallationError(
                f"cannot decrypt stored credentials: the key differs from the one they were stored with "
                f"(check {KEY_VARIABLE} or the key file)"
            ) from None
        return bag


def _ago(seconds: float) -> str:
    return f"{int(seconds // 60)} min" if seconds >= 60 else f"{max(1, int(seconds))} s"


def _key_file(path: Path) -> bytes:
    """Read the key file, creating it with mode 0600 on first use (never readable by others)."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key
