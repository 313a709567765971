"""Trigger POSTs over kept-alive connections (webhooks/posting.py), against scripted servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

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
