"""Where requests may go: operator URL rewrites, and the private-network guard for tenant URLs (D31)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from miniapp_sync.errors import InstallationError


@dataclass(frozen=True)
class Rewrites:
    """Operator-given origin rewrites, e.g. ``https://api.salla.dev`` → the local sandbox.

    They point a definition at a sandbox without editing it (the demo, the checklist, tests).
    A rewritten URL is the operator's choice, so it is trusted like the definition's own URLs.
    """

    origins: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, pairs: Iterable[str]) -> Rewrites:
        """Build from ``FROM=TO`` strings (``https://api.salla.dev=http://127.0.0.1:8765``)."""
        origins: dict[str, str] = {}
        for pair in pairs:
            source, sep, target = pair.partition("=")
            if not sep or not _origin(source) or not _origin(target):
                raise InstallationError(f"a rewrite is FROM=TO with two http(s) origins, found {pair!r}")
            origins[source.rstrip("/")] = target.rstrip("/")
        return cls(origins)

    def apply(self, url: str) -> str:
        """Return ``url`` with its origin rewritten when a rewrite names it."""
        for source, target in self.origins.items():
            if url == source or url.startswith((source + "/", source + "?")):
                return target + url[len(source) :]
        return url


def _origin(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return not ip.is_global or ip.is_multicast


async def check_public_url(url: str, *, what: str) -> None:
    """Refuse a tenant-supplied URL whose host is, or resolves to, a private address (SSRF, D31)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InstallationError(f"{what}: expected an http(s) URL, found {url!r}")
    host = parts.hostname
    try:
        addresses = {host} if _is_ip(host) else await _resolve(host, parts.port)
    except OSError as exc:
        raise InstallationError(f"{what}: cannot resolve {host!r}: {exc.strerror or exc}") from None
    if any(_private(a) for a in addresses):
        raise InstallationError(
            f"{what}: {host!r} is a private or local address; tenant-supplied URLs must be public "
            "(run with --allow-private-network to permit it)"
        )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _resolve(host: str, port: int | None) -> set[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    return {str(info[4][0]) for info in infos}
