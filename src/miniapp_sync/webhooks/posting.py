"""Trigger POSTs over kept-alive HTTP/1.1 connections: what a subscriber POST needs, and no more.

Departs from DESIGN §3 (aiohttp is the HTTP client) for trigger delivery only: a POST per
processed delivery was the processor's largest CPU cost, and most of it was aiohttp's request
machinery (URL objects, the payload registry, multidicts, timers, tracing hooks), not the
socket: ~88 µs of CPU a 3 kB POST with aiohttp against ~23 µs here, on uvloop (issue #17
item 4; the numbers are in the commit message). Providers still go through aiohttp, which
their redirects, cookies, compression and the private-network guard need; none applies here:
subscriber URLs are the operator's, and a redirect is an answer like any other non-2xx.

What a POST does: connect (TLS verified against the system's roots for https, with SNI), or
take an idle connection to the same origin; send the head and body in one write; parse the answer
with httptools (uvicorn's C parser: Content-Length, chunked, and bodies that end with the
connection alike), keeping the status and discarding the body; put the connection back for reuse
unless the server said ``Connection: close``. 1xx interim answers are skipped. The whole exchange
(connect, TLS, answer) has one deadline. A reused connection that the server had closed before
our request reached it (idle keep-alive closes race with the next request) is retried once on a
new connection, as browsers do; subscribers dedupe by ``webhook-id`` in any case (D27).

A subscriber's server is not trusted to be sane: an answer whose head (interim answers included)
passes ``MAX_HEAD`` bytes, or that passes ``MAX_ANSWER`` bytes in all (an endless or chunked body
that never ends), fails as ``AnswerTooLarge`` at once rather than at the deadline, and nothing of
it is kept but the parser's state. Idle connections are bounded per origin and overall, and
closed once idle ``keep_idle`` seconds, even when no POST comes again. Nothing tenant-specific
rides on a connection (each request carries its own head), so one connection serves every
tenant posting to that origin.

Subscriber URLs are not checked against private networks (D31 checks URLs that tenant-supplied
values reach): they are written by the operator (``webhooks subscribe``), as a definition's URLs
are, and are often on the operator's own network. No tenant value reaches them, and redirects are
not followed, so a subscriber cannot send our POSTs elsewhere.

Failures raise ``PostFailed``, whose text is a class of error only (``ConnectionRefusedError``,
``TimeoutError``, ``BadAnswer``...): never the URL, which may carry a token.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, cast
from urllib.parse import quote, unquote, urlsplit

import httptools

KEEP_IDLE: Final = 15.0  # seconds an idle connection is kept for reuse (aiohttp's default keep-alive)
MAX_IDLE: Final = 32  # idle connections kept per origin at most
MAX_IDLE_TOTAL: Final = 256  # and over all origins (a file descriptor each)
MAX_HEAD: Final = 64 * 1024  # bytes of an answer before its final headers end: several times any sane head
MAX_ANSWER: Final = 1 << 20  # bytes of an answer in all: only the status is kept, the body is skipped
_SAFE: Final = "/%:@!$&'()*+,;=-._~?"  # left as written when a URL's path and query are requoted


class PostFailed(Exception):
    """A POST got no answer: the text names the kind of failure, never the URL."""


class BadAnswer(Exception):
    """The server's answer is not HTTP/1.x, or it ended before its headers did."""


class AnswerTooLarge(BadAnswer):
    """The server's answer passed MAX_HEAD bytes before its headers ended, or MAX_ANSWER in all."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a URL's POSTs go: the origin to connect to and the request line's parts."""

    tls: bool
    host: str
    port: int
    head: bytes  # "POST <path> HTTP/1.1" and Host (and Authorization from the URL's user info), CRLF-ended


@functools.lru_cache(maxsize=256)
def target(url: str) -> Target:
    """Parse a subscriber URL once (http or https); raise PostFailed for any other."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PostFailed("InvalidURL")
    tls = parts.scheme == "https"
    try:
        port = parts.port or (443 if tls else 80)
        host = parts.hostname.encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        raise PostFailed("InvalidURL") from None
    path = quote(parts.path or "/", safe=_SAFE) + (f"?{quote(parts.query, safe=_SAFE)}" if parts.query else "")
    shown = f"[{host}]" if ":" in host else host
    lines = [f"POST {path} HTTP/1.1", f"Host: {shown}" if port == (443 if tls else 80) else f"Host: {shown}:{port}"]
    if parts.username is not None:  # as aiohttp does: user info in the URL is Basic auth
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        lines.append(f"Authorization: Basic {base64.b64encode(pair).decode()}")
    if any(ord(c) < 0x21 and c != " " for line in lines for c in line):
        raise PostFailed("InvalidURL")
    return Target(tls, host, port, ("\r\n".join(lines) + "\r\n").encode("ascii"))


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: asyncio.Future[int] | None = None
        self.received = 0  # bytes of the current answer (interim answers included)
        self.headers_done = False
        self.delimited = False  # the body's end is given (Content-Length, chunked), not the connection's
        self.reusable = False
        self.closed = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self.answer is None or self.answer.done():
            self._abort()  # bytes nobody asked for: the connection is out of step
            return
        if self.received > MAX_ANSWER:
            self._finish(exception=AnswerTooLarge())
            self._abort()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._finish(exception=BadAnswer())
            self._abort()
            return
        if not self.headers_done and self.received > MAX_HEAD:  # endless headers, or a flood of 1xx answers
            self._finish(exception=AnswerTooLarge())
            self._abort()

    def on_message_begin(self) -> None:
        if self.answer is None or self.answer.done():  # a second answer to one request: out of step
            self.reusable = False

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"content-length" or (lowered == b"transfer-encoding" and b"chunked" in value.lower()):
            self.delimited = True

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_message_complete(self) -> None:
        if self.answer is None or self.answer.done():
            return  # the stray answer on_message_begin saw
        status = self.parser.get_status_code()
        if status < 200:  # an interim answer (103 Early Hints...): the real one follows
            self.headers_done = self.delimited = False
            return
        self.reusable = self.parser.should_keep_alive()
        self._finish(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.headers_done and not self.delimited:  # a body that ends with the connection has ended
            self._finish(self.parser.get_status_code())
        else:
            self._finish(exception=ConnectionResetError() if self.received else _NoAnswer())

    def _finish(self, status: int = 0, *, exception: BaseException | None = None) -> None:
        if self.answer is not None and not self.answer.done():
            if exception is not None:
                self.answer.set_exception(exception)
            else:
                self.answer.set_result(status)

    def _abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Close the connection (an answer under way is abandoned)."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def exchange(self, data: bytes) -> int:
        """Send one request; return the status of its answer."""
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.received = 0
        self.headers_done = self.delimited = self.reusable = False
        self.transport.write(data)
        try:
            return await self.answer
        finally:
            self.answer = None


class _NoAnswer(ConnectionResetError):
    """The connection closed before a byte of the answer came: a reused one may just have timed out idle."""


class Poster:
    """POST bytes to URLs, reusing connections per origin; ``close`` closes the idle ones."""

    def __init__(
        self, *, keep_idle: float = KEEP_IDLE, max_idle: int = MAX_IDLE, max_idle_total: int = MAX_IDLE_TOTAL
    ) -> None:
        self.keep_idle = keep_idle
        self.max_idle = max_idle
        self.max_idle_total = max_idle_total
        self._idle: dict[tuple[bool, str, int], list[_Connection]] = {}
        self._idle_count = 0
        self._sweeper: asyncio.TimerHandle | None = None  # closes expired idle connections; one at a time
        self._tls: ssl.SSLContext | None = None

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        """POST ``body`` with ``headers`` (Content-Length is added); return the answer's status.

        Raises PostFailed when no answer came within ``timeout`` seconds, or none could be read.
        """
        where = target(url)
        if any("\r" in text or "\n" in text for pair in headers.items() for text in pair):
            raise ValueError("a header holds a line break")  # it would smuggle a header or a request in
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        data = b"".join((where.head, extra.encode("latin-1"), b"Content-Length: %d\r\n\r\n" % len(body), body))
        try:
            async with asyncio.timeout(timeout):
                return await self._exchange(where, data)
        except (OSError, TimeoutError, BadAnswer) as exc:
            name = "ConnectionClosed" if isinstance(exc, _NoAnswer) else type(exc).__name__
            raise PostFailed(name) from None

    async def _exchange(self, where: Target, data: bytes) -> int:
        key = (where.tls, where.host, where.port)
        connection = self._take(key)
        if connection is not None:
            try:
                return await self._use(key, connection, data)
            except _NoAnswer:
                pass  # closed idle before the request reached the server: once more on a new connection
        return await self._use(key, await self._connect(where), data)

    async def _use(self, key: tuple[bool, str, int], connection: _Connection, data: bytes) -> int:
        try:
            status = await connection.exchange(data)
        except BaseException:  # a timeout or a cancellation mid-answer: the connection is out of step
            connection.close()
            raise
        if connection.reusable and not connection.closed:
            self._give_back(key, connection)
        else:
            connection.close()
        return status

    def _take(self, key: tuple[bool, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        horizon = time.monotonic() - self.keep_idle
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if not connection.closed and connection.idle_since > horizon:
                return connection
            connection.close()
        return None

    def _give_back(self, key: tuple[bool, str, int], connection: _Connection) -> None:
        if self._idle_count >= self.max_idle_total:
            self._sweep()
        idle = self._idle.setdefault(key, [])
        if len(idle) >= self.max_idle or self._idle_count >= self.max_idle_total:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)
        self._idle_count += 1
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(self.keep_idle, self._swept)

    def _swept(self) -> None:
        self._sweeper = None
        self._sweep()
        if self._idle:  # again when the oldest connection left comes due
            oldest = min(c.idle_since for idle in self._idle.values() for c in idle)
            delay = max(0.0, oldest + self.keep_idle - time.monotonic())
            self._sweeper = asyncio.get_running_loop().call_later(delay, self._swept)

    def _sweep(self) -> None:
        """Close the idle connections kept ``keep_idle`` or longer, or closed by their server."""
        horizon = time.monotonic() - self.keep_idle
        for key, idle in list(self._idle.items()):
            kept = []
            for connection in idle:
                if not connection.closed and connection.idle_since > horizon:
                    kept.append(connection)
                else:
                    connection.close()
            self._idle_count -= len(idle) - len(kept)
            if kept:
                self._idle[key] = kept
            else:
                del self._idle[key]  # an origin not posted to any more leaves no entry behind

    async def _connect(self, where: Target) -> _Connection:
        loop = asyncio.get_running_loop()
        if where.tls:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            _, connection = await loop.create_connection(
                _Connection, where.host, where.port, ssl=self._tls, server_hostname=where.host
            )
        else:
            _, connection = await loop.create_connection(_Connection, where.host, where.port)
        return connection

    def close(self) -> None:
        """Close every idle connection (POSTs still under way close theirs when they end)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        idle, self._idle = self._idle, {}
        self._idle_count = 0
        for connections in idle.values():
            for connection in connections:
                connection.close()
