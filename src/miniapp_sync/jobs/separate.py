"""``serve --processor separate``: the embedded queue runs in a child process, so acknowledgements
never wait behind mapping on the server's event loop.

The server forks one processor before it starts listening. The child opens its own runtime over
the same SQLite file and runs the same ``Work`` through a ``LocalQueue`` (D36): inbox drains,
trigger delivery, syncs started through the API, schedules, sweep and purge. It is the store's
only scheduler and the only process that adopts rows a stopped process left claimed, so
schedules fire once. The server keeps receiving: its group commit writes the inbox, and each
enqueue (a drain after a commit, a sync from the API) travels to the child over a socket pair
as one JSON line, answered with the job's id (or null: a duplicate).

SQLite's one writer is shared by two processes: WAL, ``BEGIN IMMEDIATE`` and ``busy_timeout``
make each wait its turn, and the processor's transactions are one claim and one batch long.

Stopping: the child ignores SIGINT and SIGTERM, so a Ctrl-C or a SIGTERM to the process group
stops the server first; the server commits what it received, asks for its drains, then closes
the channel; at end-of-file the child stops its queue (a sync cut short ends ``interrupted``,
D38), then closes its HTTP session and store, and exits. The server waits for it (``STOP_GRACE``
seconds, then kills it). A server that dies leaves the child an end-of-file too: no orphan. A
child that dies while the server runs is logged and stops the server, which then exits
non-zero (``ProcessorDied``): a supervisor restarts both; the inbox kept every acknowledged delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import orjson

from miniapp_sync.errors import StoreError
from miniapp_sync.jobs.local import LocalQueue
from miniapp_sync.jobs.model import Enqueued, Job
from miniapp_sync.jobs.queue import JobQueue
from miniapp_sync.jobs.work import Work

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from miniapp_sync.runtime import Runtime
    from miniapp_sync.webhooks.service import WebhookService
    from miniapp_sync.webhooks.settings import WebhookSettings

log = logging.getLogger("miniapp_sync.jobs")
STOP_GRACE: Final = 30.0  # seconds the processor has to stop after the server closed its channel
LINE_LIMIT: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class ProcessorPlan:
    """What the child needs to build its side: a runtime of its own, the webhook settings, the schedule."""

    open_runtime: Callable[[], Runtime]
    webhooks: WebhookSettings
    default_schedule: str | None
    concurrency: int = 4


class ProcessorProcess:
    """The forked processor and the server's end of its channel."""

    def __init__(self, process: BaseProcess, channel: socket.socket) -> None:
        self.process = process
        self.channel = channel
        self.died: str | None = None  # why the child ended while the server ran, once it has

    @classmethod
    def start(cls, plan: ProcessorPlan, inherited: Callable[[], None]) -> ProcessorProcess:
        """Fork the processor; ``inherited`` runs first in the child to let go of what it must not use.

        Call before any thread or event loop exists: fork copies only the calling thread.
        """
        ours, theirs = socket.socketpair()
        context = multiprocessing.get_context("fork")
        process = context.Process(
            target=_child_main, args=(plan, theirs, ours, inherited), name="miniapp-sync processor", daemon=False
        )
        process.start()
        theirs.close()
        return cls(process, ours)

    @property
    def pid(self) -> int | None:
        """Return the child's process id."""
        return self.process.pid

    def describe_exit(self) -> str:
        """Return how the child ended, for a message."""
        code = self.process.exitcode
        if code is not None and code < 0:
            return f"was killed by signal {signal.Signals(-code).name}"
        return f"exited with status {code}"

    def stop(self, grace: float = STOP_GRACE) -> None:
        """End the channel (the child's cue to stop), wait ``grace`` seconds for it, then kill it."""
        with contextlib.suppress(OSError):
            # Shut the connection down rather than only close this socket object: an event loop's
            # transport may still hold it (uvloop keeps a reference, and then close() ends nothing),
            # and the child would wait for an end-of-file until the grace ran out and it was killed.
            self.channel.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.channel.close()
        self.process.join(grace)
        if self.process.is_alive():
            log.error("the inbox processor (pid %s) did not stop within %.0f s: killing it", self.pid, grace)
            self.process.kill()
            self.process.join()


class ForwardingQueue(JobQueue):
    """The server's queue: every job goes to the processor process, which runs it (``serving`` watches it)."""

    def __init__(self, work: Work, processor: ProcessorProcess, *, on_death: Callable[[], None]) -> None:
        super().__init__(work)
        self.processor = processor
        self._on_death = on_death
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._turn = asyncio.Lock()  # one request on the channel at a time: its answer is the next line

    async def open(self) -> None:
        """Connect to the processor's channel."""
        await self._channel()

    async def _channel(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(sock=self.processor.channel, limit=LINE_LIMIT)
        return self._reader, self._writer

    async def close(self) -> None:
        """Close the channel: the processor stops its queue and exits."""
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self._writer.wait_closed()
            self._writer = None

    async def enqueue(self, job: Job, *, delay: float = 0.0) -> Enqueued:
        """Hand ``job`` to the processor; return its id there, or a duplicate's receipt."""
        answer = await self._ask({"kind": job.kind, "args": job.args(), "delay": delay}, f"enqueue {job}")
        return Enqueued(job, answer["id"])

    async def hasten(self, job: Job) -> str | None:
        """Ask the processor to make the waiting job of ``job``'s key due now; return its id (None: none waits)."""
        answer = await self._ask({"hasten": True, "kind": job.kind, "args": job.args()}, f"hasten {job}")
        found: str | None = answer["id"]
        return found

    async def metrics(self) -> bytes:
        """Return the processor's series (processing, syncs, trigger POSTs, the store's gauges) for ``/metrics``."""
        answer = await self._ask({"scrape": True}, "read the inbox processor's metrics")
        return str(answer["metrics"]).encode()

    async def _ask(self, request: dict[str, Any], action: str) -> dict[str, Any]:
        # Shielded: a caller cancelled mid-exchange (its client went away) must not leave its answer on
        # the channel, where the next request would read it as its own.
        return await asyncio.shield(self._exchange(request, action))

    async def _exchange(self, request: dict[str, Any], action: str) -> dict[str, Any]:
        reader, writer = await self._channel()
        async with self._turn:
            try:
                writer.write(orjson.dumps(request) + b"\n")
                await writer.drain()
                line = await reader.readline()
            except (OSError, ConnectionError) as exc:
                raise StoreError(f"cannot {action}: the inbox processor is gone ({exc})") from None
        if not line:
            raise StoreError(f"cannot {action}: the inbox processor is gone")
        answer: dict[str, Any] = orjson.loads(line)
        return answer

    async def not_ready(self) -> str | None:
        """Return why jobs cannot run now: the processor process is not running."""
        if not self.processor.process.is_alive():
            return f"the inbox processor (pid {self.processor.pid}) {self.processor.describe_exit()}"
        return None

    async def run_worker(self, *, concurrency: int = 4) -> None:
        """Jobs run in the processor process: wait as long as it runs."""
        # Watch its sentinel (readable once it has ended) rather than join it in a thread: a
        # cancelled to_thread(join) went on waiting in waitpid, and when stop() joined the child
        # too, the thread that lost the race got ECHILD, read the child as alive and killed it.
        loop, ended = asyncio.get_running_loop(), asyncio.Event()
        sentinel = self.processor.process.sentinel
        loop.add_reader(sentinel, ended.set)
        try:
            await ended.wait()
        finally:
            loop.remove_reader(sentinel)
        self.processor.process.join()  # it has ended: this only reaps it, for its exit status

    @contextlib.asynccontextmanager
    async def serving(self, *, concurrency: int = 4) -> AsyncIterator[None]:
        """Keep the channel open and watch the processor while the server runs; then stop it."""
        await self.open()
        watcher = asyncio.create_task(self._watch(), name="processor watch")
        try:
            yield
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            await self.close()
            await asyncio.to_thread(self.processor.stop)

    async def _watch(self) -> None:
        await self.run_worker()
        why = f"the inbox processor (pid {self.processor.pid}) {self.processor.describe_exit()}"
        self.processor.died = why
        log.error("%s: stopping the server (the inbox keeps what was acknowledged; start serve again)", why)
        self._on_death()


def _child_main(
    plan: ProcessorPlan, channel: socket.socket, servers_end: socket.socket, inherited: Callable[[], None]
) -> None:
    # The server owns the lifecycle: a Ctrl-C or a SIGTERM to the process group reaches it, and
    # it closes the channel once it has committed and handed over what it received.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    servers_end.close()  # else the server's death would not end the channel
    inherited()
    try:
        _event_loop_run()(_run_processor(plan, channel))
    except Exception:
        log.exception("the inbox processor failed")
        os._exit(1)


def _event_loop_run() -> Callable[[Coroutine[Any, Any, None]], None]:
    """Return uvloop's run where it is installed (as uvicorn runs the server), else asyncio's.

    The processor is mostly event-loop work (a trigger POST each delivery); in-process, interleaved runs
    on a busy machine measured trigger delivery at 0-15% less CPU with it (noisy).
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


async def _run_processor(plan: ProcessorPlan, channel: socket.socket) -> None:
    from miniapp_sync.sync.metrics import SyncMetrics
    from miniapp_sync.webhooks.metrics import WebhookMetrics
    from miniapp_sync.webhooks.service import WebhookService

    runtime = plan.open_runtime()
    try:
        # The series of what this process runs; the server's /metrics adds them to its own.
        metrics = WebhookMetrics(receiving=False)
        runtime.engine.metrics = SyncMetrics(metrics.registry)
        service = WebhookService(runtime, settings=plan.webhooks, metrics=metrics)
        queue = LocalQueue(
            Work(
                runtime,
                drain=service.processor.drain_installation,
                deliver=service.delivery.deliver_due,
                default_schedule=plan.default_schedule,
            )
        )
        service.connect(queue)
        reader, writer = await asyncio.open_connection(sock=channel, limit=LINE_LIMIT)
        try:
            async with queue.serving(concurrency=plan.concurrency):
                await _answer(reader, writer, queue, service)
        finally:
            writer.close()
            await service.close()  # only now that the queue stopped: no deliver job can find it closed
    finally:
        runtime.close()


async def _answer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, queue: LocalQueue, service: WebhookService
) -> None:
    """Enqueue each job the server sends, answering its id (or scrape the metrics), until it closes the channel."""
    while line := await reader.readline():
        request = orjson.loads(line)
        if request.get("scrape"):
            answer: dict[str, Any] = {"metrics": (await service.scrape()).decode()}
        elif request.get("hasten"):
            answer = {"id": await queue.hasten(Job(request["kind"], **request["args"]))}
        else:
            job = Job(request["kind"], **request["args"])
            answer = {"id": (await queue.enqueue(job, delay=float(request["delay"]))).id}
        writer.write(orjson.dumps(answer) + b"\n")
        await writer.drain()
