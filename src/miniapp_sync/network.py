"""Where requests may go (D31): operator rewrites, tenant values in a URL's host, and the private-network guard.

A URL written entirely in the definition, or produced by an operator's ``--rewrite``, is trusted.
A URL whose origin is built from tenant-supplied values (``{{storeUrl}}/…``,
``https://{{subdomain}}.example.com``, ``https://[[shopHost]]/…``) is not, and neither is an origin
a provider's answer points at (a redirect, a pagination ``next`` link) that the definition does not
name. Untrusted origins are reached only through ``Egress.session()``: its connector refuses, on the
address actually connected to, every private, loopback, link-local, CGNAT, ULA, unspecified,
multicast and IPv4-mapped/-compatible/NAT64 form of them. Checking a name once and letting the
client resolve it again would let DNS rebinding through; checking the socket's address cannot be
fooled that way, and it covers redirects and IP literals (which aiohttp never resolves) alike.
``--allow-private-network`` turns the guard off.

Values placed in a URL's host are validated before they are used: a placeholder that is part of
the host must render as one host label, one that is the whole host as a host name (a port
allowed), one that is the whole origin (``{{storeUrl}}``) as an http(s) origin. The tenant id
(``{{subdomain}}``, ``{{tenant}}`` system values) never resolves there.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from miniapp_sync.definition.placeholders import CREDENTIAL, USER
from miniapp_sync.errors import InstallationError, preview
from miniapp_sync.templating import Context, render

if TYPE_CHECKING:  # aiohttp is imported when a request is made: commands that make none start faster
    import aiohttp
    from aiohappyeyeballs import AddrInfoType
    from aiohttp.abc import AbstractResolver

__all__ = [
    "REFUSAL",
    "Egress",
    "Rewrites",
    "Target",
    "is_http_url",
    "is_private",
    "origin_of",
    "refused",
    "render_url",
    "written_origins",
]

REFUSAL: Final = (
    "refused: the address is private or local, and tenant-supplied URLs must reach public addresses "
    "(run with --allow-private-network to permit it)"
)
# System values that name the tenant: they never resolve inside a URL's host (D31a).
TENANT_VALUES: Final = ("subdomain", "tenant")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_HOST = re.compile(r"(?:(?!-)[A-Za-z0-9-]{1,63}(?<!-)\.)*(?!-)[A-Za-z0-9-]{1,63}(?<!-)\.?(?::[0-9]{1,5})?")
_BRACKETED = re.compile(r"\[([0-9A-Fa-f:.]+)\](?::[0-9]{1,5})?")
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")


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
            if not sep or not is_http_url(source) or not is_http_url(target):
                raise InstallationError(f"a rewrite is FROM=TO with two http(s) origins, found {pair!r}")
            origins[source.rstrip("/")] = target.rstrip("/")
        return cls(origins)

    def apply(self, url: str) -> str:
        """Return ``url`` with its origin rewritten when a rewrite names it."""
        for source, target in self.origins.items():
            if url == source or url.startswith((source + "/", source + "?")):
                return target + url[len(source) :]
        return url


def is_http_url(text: str) -> bool:
    """Return whether ``text`` is an http(s) URL a request can be sent to: a host, a port 0-65535 if any."""
    # urlsplit raises on an unclosed IPv6 bracket, and .port on a port that is not 0-65535: both
    # are a bad rewrite, to refuse here rather than as an internal error in every later request.
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  # read for its check
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def origin_of(url: str) -> str:
    """Return ``scheme://host[:port]`` of a URL, lower-cased, for comparing origins."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def is_private(address: str) -> bool:
    """Return whether an IP address is anything but a public unicast one (the SSRF policy of D31)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None or int(ip) >> 32 == 0:
            return True  # IPv4-mapped, and ::/96 (unspecified, loopback, deprecated IPv4-compatible)
        if ip in _NAT64:  # reaches the IPv4 address it embeds
            return is_private(str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
    return not ip.is_global or ip.is_multicast


class PrivateAddressRefused(OSError):
    """The guarded connector refused to open a socket to a private address."""


def refused(exc: BaseException) -> bool:
    """Return whether a client error is the guard refusing a private address (not worth retrying)."""
    import aiohttp

    return isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, PrivateAddressRefused)


def _guarded_socket(private: Callable[[str], bool], addr_info: AddrInfoType) -> socket.socket:
    # Called for every address aiohttp is about to connect to, after any resolution: the last word.
    family, kind, proto, _, address = addr_info
    if private(str(address[0])):
        # One message whatever the address, so that when every address of a name is refused the
        # connector raises this very exception (it merges differing ones into a plain OSError).
        raise PrivateAddressRefused(errno.EACCES, REFUSAL)
    return socket.socket(family, kind, proto)


@dataclass(frozen=True)
class Target:
    """A rendered request URL, and whether its origin came from tenant-supplied values."""

    url: str
    tenant_built: bool


@dataclass(frozen=True)
class Egress:
    """The request policy of one runtime: rewrites, and the guard on untrusted origins (D31).

    ``resolver`` and ``private`` are seams: the DNS resolver of the guard (aiohttp's by default),
    and which addresses it refuses (``is_private``; a test may count one loopback address as public).
    """

    rewrites: Rewrites = field(default_factory=Rewrites)
    allow_private_network: bool = False
    resolver: AbstractResolver | None = field(default=None, compare=False)
    private: Callable[[str], bool] = field(default=is_private, compare=False)

    def target(self, template: str, context: Context, where: str) -> Target:
        """Render a URL template, validating what lands in its host, then apply the rewrites."""
        url, tenant_built = render_url(template, context, where)
        rewritten = self.rewrites.apply(url)
        # An operator's rewrite is the operator's choice: trusted like the definition's own URLs.
        return Target(rewritten, tenant_built and rewritten == url)

    def guards(self, target: Target) -> bool:
        """Return whether requests to ``target`` must go through the guarded session."""
        return target.tenant_built and not self.allow_private_network

    async def check(self, url: str, *, what: str) -> None:
        """Refuse early, naming ``what``, a URL whose host is or resolves to a private address.

        The connection-time guard is what holds (a name may resolve differently a moment later);
        this check gives the common mistake — a private store URL — an error naming its field.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InstallationError(f"{what}: expected an http(s) URL, found {url!r}")
        host = parts.hostname
        try:
            addresses = {host} if _is_ip(host) else await self._resolve(host, parts.port)
        except OSError as exc:
            raise InstallationError(f"{what}: cannot resolve {host!r}: {exc.strerror or exc}") from None
        if any(self.private(a) for a in addresses):
            raise InstallationError(
                f"{what}: {host!r} is a private or local address; tenant-supplied URLs must be public "
                "(run with --allow-private-network to permit it)"
            )

    async def _resolve(self, host: str, port: int | None) -> set[str]:
        from aiohttp.resolver import ThreadedResolver

        resolver = self.resolver or ThreadedResolver()
        answers = await resolver.resolve(host, port or 443, family=socket.AF_UNSPEC)
        return {answer["host"] for answer in answers}

    def session(self) -> aiohttp.ClientSession:
        """Return a new client session whose every connection is checked against the policy."""
        import aiohttp

        guard = functools.partial(_guarded_socket, self.private)
        connector = aiohttp.TCPConnector(resolver=self.resolver, socket_factory=guard)
        return aiohttp.ClientSession(connector=connector, trust_env=False)


def written_origins(base: Target, urls: Iterable[str]) -> list[str]:
    """Return the origins a definition names: its base URL's unless tenant-built, and absolute endpoint URLs'."""
    origins = [origin_of(base.url)] if base.url and not base.tenant_built else []
    return origins + [origin_of(url) for url in urls if url.startswith(("http://", "https://"))]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _masked(template: str) -> str:
    # Placeholders blanked to same-length filler, so their text cannot look like URL syntax.
    for pattern in (CREDENTIAL, USER):
        template = pattern.sub(lambda m: "\0" * len(m.group(0)), template)
    return template


def render_url(template: str, context: Context, where: str) -> tuple[str, bool]:
    """Render a URL template; return it and whether tenant values chose its origin (D31).

    Placeholders in the host are resolved without the tenant id and validated: part of the host →
    one host label; the whole host (and port) → a host name; a leading placeholder with no scheme
    before it → an http(s) origin. Everything after the host renders as ``render`` does.
    """
    if "[[" not in template and "{{" not in template:
        return template, False
    masked = _masked(template)
    scheme_end = masked.find("://")
    if scheme_end < 0:
        if not masked.startswith("\0"):
            return str(render(template, context, where)), False  # a relative URL: no origin of its own
        first = CREDENTIAL.match(template) or USER.match(template)
        assert first is not None
        origin = _host_value(first.group(0), context, where)
        _check_origin(origin, first.group(0), where)
        return origin + str(render(template[first.end() :], context, where)), True
    if "\0" in masked[:scheme_end]:
        raise InstallationError(
            f"{where}: a placeholder in a URL's scheme is not supported; found {template!r} "
            "(hint: use a placeholder for the whole origin, e.g. '{{storeUrl}}/api')"
        )
    start = scheme_end + 3
    end = next((i for i in range(start, len(masked)) if masked[i] in "/?#"), len(masked))
    authority = template[start:end]
    if "\0" not in masked[start:end]:
        return str(render(template, context, where)), False
    whole = CREDENTIAL.fullmatch(authority) or USER.fullmatch(authority)

    def host_part(match: re.Match[str]) -> str:
        value = _host_value(match.group(0), context, where)
        expected, pattern = ("a host name", _HOST) if whole else ("a host label (letters, digits, '-')", _LABEL)
        if not (pattern.fullmatch(value) or (whole and _BRACKETED.fullmatch(value))):
            raise InstallationError(
                f"{where}: the value of {match.group(0)} goes into the URL's host; expected {expected}, "
                f"found {preview(value)}"
            )
        return value

    host = USER.sub(host_part, CREDENTIAL.sub(host_part, authority))
    return template[:start] + host + str(render(template[end:], context, where)), True


def _host_value(placeholder: str, context: Context, where: str) -> str:
    system = {k: v for k, v in context.system.items() if k not in TENANT_VALUES}
    try:
        value = render(placeholder, context.with_values(system=system), where)
    except InstallationError as exc:
        if placeholder.strip("{} ") not in TENANT_VALUES:
            raise
        raise InstallationError(
            f"{exc} (the tenant id is never used in a URL's host: give it as an install-form value)"
        ) from None
    if isinstance(value, dict | list):
        raise InstallationError(f"{where}: {placeholder} goes into a URL's host; expected text, found {preview(value)}")
    return str(value)


def _check_origin(value: str, placeholder: str, where: str) -> None:
    parts = urlsplit(value)
    clean = not any(c in value for c in "\\@ \t\r\n") and not parts.query and not parts.fragment
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not clean or not port_ok:
        raise InstallationError(
            f"{where}: the value of {placeholder} is the URL's origin; expected an http(s) URL such as "
            f"https://shop.example.com, found {preview(value)}"
        )


def is_loopback_url(url: str) -> bool:
    """Return whether ``url``'s host is this machine (localhost, 127.0.0.0/8, ::1)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    return _is_ip(host) and ipaddress.ip_address(host).is_loopback
