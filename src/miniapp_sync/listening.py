"""Listening sockets for ``serve`` and the worker's metrics, bound before anything says "serving".

Binding first turns "the port is taken" into a clear error that names the address and says what
to do, instead of a log line from deep inside the server and an exit code of its own; and the
"serving …" line is printed only once the server accepts connections.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import Any

from miniapp_sync.errors import ListenError

BACKLOG = 2048  # uvicorn's default


def listen(host: str, port: int, *, option: str = "--port") -> socket.socket:
    """Return a socket bound to host:port and listening; raise ListenError saying why not and what to do."""
    where = f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ListenError(
            f"cannot listen on {where}: {host!r} is not an address of this machine ({exc.strerror})"
        ) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart at once after a stop, as uvicorn does
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ListenError(_why(exc, where, port, option)) from None
    sock.set_inheritable(True)
    return sock


def _why(exc: OSError, where: str, port: int, option: str) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {where}: port {port} is already in use by another process "
            f"(hint: stop that process, or choose a free port with {option})"
        )
    if exc.errno == errno.EACCES:
        return f"cannot listen on {where}: port {port} needs privileges (hint: choose a port above 1023 with {option})"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: not an address of this machine (hint: --host 127.0.0.1 or 0.0.0.0)"
    return f"cannot listen on {where}: {exc.strerror}"


class Stop:
    """Ask a running ``serve`` to shut down gracefully, as a SIGTERM would (from the app, on its loop)."""

    def __init__(self) -> None:
        self.server: Any = None

    def __call__(self) -> None:
        if self.server is not None:
            self.server.should_exit = True


def serve(
    app: Any, sock: socket.socket, *, on_started: Callable[[], None], stop: Stop | None = None, **config: Any
) -> None:
    """Serve an ASGI app on a listening socket until stopped; call ``on_started`` once it answers."""
    import uvicorn  # only the ASGI server needs it

    class Server(uvicorn.Server):
        """uvicorn's server, telling us when it accepts connections (after the app's start-up)."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                on_started()

    server = Server(uvicorn.Config(app, **config))
    if stop is not None:
        stop.server = server
    try:
        server.run(sockets=[sock])
    except SystemExit as exc:  # uvicorn exits when the app's start-up fails; it has logged why
        if exc.code:
            raise ListenError(f"the server did not start (its log above says why; exit status {exc.code})") from None
    finally:
        sock.close()
