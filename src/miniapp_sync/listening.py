"""Listening sockets for ``serve`` and the worker's metrics, bound before anything says "serving".

Binding first turns "the port is taken" into a clear error that names the address and says what
to do, instead of a log line from deep inside the server and an exit code of its own; and the
"serving …" line is printed only once the server accepts connections.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import socket
from collections.abc import Callable, Iterator
from typing import Any

from miniapp_sync.errors import ListenError

BACKLOG = 2048  # uvicorn's default


def listen(host: str, port: int, *, option: str = "--port") -> socket.socket:
    """Return a socket bound to host:port and listening; raise ListenError saying why not and what to do."""
    where = f"{host}:{port}"
    if not 0 <= port <= 65535:  # getaddrinfo takes 99999 as 34463 (mod 2**16) and 65536 as 0: any free port
        raise ListenError(
            f"cannot listen on {where}: a port is a number from 0 to 65535 (hint: choose one with {option})"
        )
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
    # Not inheritable (Python's default, said out loud): no program serve or a compute function
    # ever execs may hold the listening socket. The forked processor gets a copy, as fork copies
    # every descriptor, and closes it before anything else (cli/serving.py); only serve accepts.
    sock.set_inheritable(False)
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

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn raises the signals it caught again once it has shut down, so a SIGTERM'd
            # serve died of it: exit -15, and what runs after the server (closing the store, which
            # checkpoints its WAL) never ran. A SIGTERM is a supervisor's "stop": once the server has
            # shut down gracefully, that is done, and the caller goes on to close and exit 0.
            # SIGINT is still raised again (KeyboardInterrupt: the caller's finally runs, exit 130).
            with super().capture_signals():
                yield
                self._captured_signals[:] = [s for s in self._captured_signals if s != signal.SIGTERM]

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
