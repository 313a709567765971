"""Trigger POSTs over kept-alive connections (webhooks/posting.py), against scripted servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from miniapp_sync.webhooks.posting import Poster, PostFailed, target

DROP = b""  # close the connection instead of answering


@dataclass
class Scripted:
    """A raw HTTP/1.1 server: records each request, answers with the next scripted bytes, then closes if told."""

    answers: list[tuple[bytes, bool]]  # (what to write, close afterwards)
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)  # (head, body)
    connections: int = 0
    url: str = ""
    handlers: list[asyncio.Task[None] | None] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.requests.append((head, await reader.readexactly(length)))
                answer, close = self.answers.pop(0)
                writer.write(answer)
                await writer.drain()
                if close or answer == DROP:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()
        await writer.wait_closed()


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    found = Scripted([])
    server = await asyncio.start_server(found.handle, "127.0.0.1", 0)
    found.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hooks?a=1"
    async with server:
        yield found
        # Each test closed its poster: every connection ends, so the handlers close their sockets.
        await asyncio.wait_for(asyncio.gather(*(t for t in found.handlers if t is not None)), 5)


OK = (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", False)


async def test_posts_the_body_and_headers_and_reuses_the_connection(scripted: Scripted) -> None:
    scripted.answers = [OK, (b"HTTP/1.1 204 No Content\r\n\r\n", False)]
    poster = Poster()
    assert (
        await poster.post(scripted.url, b'{"n":1}', {"Content-Type": "application/json", "webhook-id": "7"}, 5) == 200
    )
    assert await poster.post(scripted.url, b'{"n":2}', {"Content-Type": "application/json"}, 5) == 204
    poster.close()
    assert scripted.connections == 1
    (head, body), (_, second) = scripted.requests
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /hooks?a=1 HTTP/1.1"
    port = scripted.url.split(":")[2].split("/")[0]
    assert {b"Host: 127.0.0.1:" + port.encode(), b"webhook-id: 7", b"Content-Length: 7"} <= set(lines)
    assert (body, second) == (b'{"n":1}', b'{"n":2}')


async def test_chunked_close_delimited_and_interim_answers_are_read_whole(scripted: Scripted) -> None:
    scripted.answers = [
        (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"5\r\nhello\r\n0\r\n\r\n", False),
        (b"HTTP/1.1 500 Oops\r\n\r\nthe body ends with the connection", True),
        (b"HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", False),
        OK,
    ]  # fmt: skip
    poster = Poster()
    statuses = [await poster.post(scripted.url, b"{}", {}, 5) for _ in range(4)]
    poster.close()
    assert statuses == [202, 500, 201, 200]
    assert scripted.connections == 3  # a new one after the close-delimited body, and after Connection: close


async def test_a_kept_connection_the_server_dropped_is_replaced_once(scripted: Scripted) -> None:
    scripted.answers = [OK, (DROP, True), OK]
    poster = Poster()
    assert await poster.post(scripted.url, b"1", {}, 5) == 200
    assert await poster.post(scripted.url, b"2", {}, 5) == 200  # dropped unanswered, sent again on a new one
    poster.close()
    assert [body for _, body in scripted.requests] == [b"1", b"2", b"2"]
    assert scripted.connections == 2


async def test_failures_name_their_kind_and_never_the_url(scripted: Scripted) -> None:
    scripted.answers = [(DROP, True), (b"SMTP ready\r\n\r\n", False)]
    poster = Poster()
    with pytest.raises(PostFailed) as dropped:
        await poster.post(scripted.url, b"{}", {}, 5)  # a new connection closed unanswered: not retried
    with pytest.raises(PostFailed) as garbled:
        await poster.post(scripted.url, b"{}", {}, 5)
    with pytest.raises(PostFailed) as refused:
        await poster.post("http://127.0.0.1:9/hooks?token=secret", b"{}", {}, 5)  # the discard port: nothing listens
    poster.close()
    assert [str(e.value) for e in (dropped, garbled, refused)] == [
        "ConnectionClosed",
        "BadAnswer",
        "ConnectionRefusedError",
    ]


async def test_no_answer_in_time_fails_with_a_timeout() -> None:
    ended = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads the request, never answers, until the poster gives up and closes
        writer.close()
        await writer.wait_closed()
        ended.set()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    async with server:
        poster = Poster()
        with pytest.raises(PostFailed, match=r"^TimeoutError$"):
            await poster.post(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/", b"{}", {}, 0.05)
        poster.close()
        await asyncio.wait_for(ended.wait(), 5)


def test_a_url_is_read_once_into_its_origin_and_request_head() -> None:
    secure = target("https://user:p%40ss@hooks.example.com/in/bo\u00efte?x=a b")
    assert (secure.tls, secure.host, secure.port) == (True, "hooks.example.com", 443)
    lines = secure.head.decode().split("\r\n")
    assert lines[0] == "POST /in/bo%C3%AFte?x=a%20b HTTP/1.1"
    assert lines[1] == "Host: hooks.example.com"
    assert lines[2] == "Authorization: Basic " + base64.b64encode(b"user:p@ss").decode()
    assert target("http://[::1]:8080").head.split(b"\r\n")[:2] == [b"POST / HTTP/1.1", b"Host: [::1]:8080"]
    for bad in ("ftp://example.com/", "http:///path", "http://example.com:99999/"):
        with pytest.raises(PostFailed, match=r"^InvalidURL$"):
            target(bad)


async def test_a_header_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError, match="line break"):
        await Poster().post("http://127.0.0.1:9/", b"{}", {"webhook-id": "1\r\nX-Evil: 1"}, 1)


@contextlib.asynccontextmanager
async def _flood(prefix: bytes, again: bytes) -> AsyncIterator[str]:
    """Serve one hostile answer to every request: ``prefix``, then ``again`` until the poster hangs up."""
    written: list[int] = []
    handlers: list[asyncio.Task[Any] | None] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())
        await reader.readuntil(b"\r\n\r\n")
        sent = len(prefix)
        writer.write(prefix)
        try:
            while sent < 64 << 20:  # a safety stop for the test itself, far past any limit
                writer.write(again)
                sent += len(again)
                await writer.drain()
        except ConnectionError:
            pass
        written.append(sent)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        await asyncio.wait_for(asyncio.gather(*(t for t in handlers if t is not None)), 30)
    assert written
    assert written[0] < 64 << 20  # the poster hung up long before the safety stop


@pytest.mark.parametrize(
    ("prefix", "again"),
    [
        (b"HTTP/1.1 200 OK\r\nX-Endless: ", b"a" * 4096),  # one header that never ends
        (b"HTTP/1.1 200 OK\r\n", b"X-Many: a\r\n" * 400),  # headers that never end
        (b"", b"HTTP/1.1 100 Continue\r\n\r\n" * 200),  # interim answers that never end
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"1000\r\n" + b"a" * 4096 + b"\r\n"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n", b"a" * 65536),  # a huge body
    ],
    ids=["endless-header", "endless-headers", "1xx-flood", "endless-chunked", "huge-body"],
)
async def test_an_endless_or_huge_answer_fails_at_its_limit_not_at_the_deadline(prefix: bytes, again: bytes) -> None:
    async with _flood(prefix, again) as url:
        poster = Poster()
        # The deadline is far off: only the answer's size can end the exchange this soon.
        with pytest.raises(PostFailed, match=r"^AnswerTooLarge$"):
            await asyncio.wait_for(poster.post(url, b"{}", {}, 600), 60)
        poster.close()


async def test_a_second_answer_to_one_request_retires_the_connection(scripted: Scripted) -> None:
    stray = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    scripted.answers = [(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n" + stray, False), OK]
    poster = Poster()
    assert await poster.post(scripted.url, b"1", {}, 5) == 201
    assert await poster.post(scripted.url, b"2", {}, 5) == 200  # not 200 from the stray answer: a new connection
    poster.close()
    assert scripted.connections == 2


async def test_idle_connections_close_after_keep_idle_without_another_post(scripted: Scripted) -> None:
    scripted.answers = [OK]
    poster = Poster(keep_idle=0)
    assert await poster.post(scripted.url, b"1", {}, 5) == 200
    # No close(), no other POST: the sweep alone closes the idle connection, so the server's handler ends.
    await asyncio.wait_for(asyncio.gather(*(t for t in scripted.handlers if t is not None)), 5)
    assert poster._idle == {}  # and the origin leaves no entry behind


async def test_idle_connections_are_bounded_over_all_origins() -> None:
    ended: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)
                writer.write(OK[0])
        except (asyncio.IncompleteReadError, ConnectionError):
            ended.append(1)
        writer.close()

    first = await asyncio.start_server(handle, "127.0.0.1", 0)
    second = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with first, second:
        poster = Poster(max_idle_total=1)
        for server in (first, second):
            assert await poster.post(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/", b"{}", {}, 5) == 200
        # The first origin's connection is still kept; the second's, over the bound, was closed at once.
        await asyncio.wait_for(_until(lambda: len(ended) == 1), 5)
        assert sum(len(idle) for idle in poster._idle.values()) == 1
        poster.close()
        await asyncio.wait_for(_until(lambda: len(ended) == 2), 5)


async def _until(done: Callable[[], bool]) -> None:
    while not done():
        await asyncio.sleep(0)


async def test_an_https_subscriber_must_show_a_certificate_the_system_trusts(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder(subject_name=name, issuer_name=name, public_key=key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    names: list[str | None] = []
    context.sni_callback = lambda sock, server_name, _: names.append(server_name)  # type: ignore[assignment,func-returns-value]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    async with server:
        poster = Poster()
        # Self-signed: refused, with the kind of failure only. The name it was asked for came as SNI.
        with pytest.raises(PostFailed, match=r"^SSLCertVerificationError$"):
            await poster.post(f"https://localhost:{server.sockets[0].getsockname()[1]}/", b"{}", {}, 5)
        poster.close()
    assert names == ["localhost"]
