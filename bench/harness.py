"""What the benchmarks share: the sandbox in a child process, ``miniapp-sync`` processes, and their figures.

- ``provider(**SandboxConfig fields)``: the bundled sandbox served from a child process (its CPU
  is not the measured process's), driven by a line protocol on its stdin: ``reset`` forgets what
  it counted, ``stats`` answers requests, responses by status, first and last API request
  (monotonic: one clock for every process on Linux), the busiest second, requests by route, and
  requests and 429s per store (``tenants``).
- ``server(args, port)``: a server process (``serve``, a bare endpoint, a sandbox) until the block
  ends, waited for until it listens and stopped with SIGTERM (graceful) at the end.
- ``cpu_seconds`` and ``peak_rss_kb`` of a process from /proc; ``percentile``; ``machine`` (the
  load average, which says how far to trust a wall-clock figure).

Run as a script only by ``provider`` (``harness.py --serve CONFIG``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "salla" / "definition.json5"


def command() -> list[str]:
    """Return how to start ``miniapp-sync``: the console script beside this interpreter, as users do."""
    script = Path(sys.executable).with_name("miniapp-sync")
    return [str(script)] if script.exists() else [sys.executable, "-m", "miniapp_sync"]


# ----------------------------------------------------------------------------- the sandbox child


@dataclass
class Provider:
    """A sandbox in a child process: its URL, and a line protocol on its stdin (reset, stats)."""

    base_url: str
    child: subprocess.Popen[str]

    @property
    def pid(self) -> int:
        return self.child.pid

    def ask(self, command: str) -> Any:
        """Send one command; return the child's JSON answer."""
        assert self.child.stdin is not None
        assert self.child.stdout is not None
        self.child.stdin.write(command + "\n")
        self.child.stdin.flush()
        return json.loads(self.child.stdout.readline())

    def reset(self) -> None:
        """Forget the requests counted so far."""
        self.ask("reset")

    def stats(self) -> dict[str, Any]:
        """Return what the sandbox counted (see the module docstring); per-store counts are keyed by str(store)."""
        answer: dict[str, Any] = self.ask("stats")
        return answer


@contextlib.contextmanager
def provider(**config: Any) -> Iterator[Provider]:
    """Serve a sandbox with these SandboxConfig fields from a child process until the block ends."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", json.dumps(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdin is not None
    try:
        base_url = child.stdout.readline().strip()
        if not base_url:
            raise RuntimeError("the sandbox child did not start")
        yield Provider(base_url, child)
    finally:
        with contextlib.suppress(OSError):
            child.stdin.close()  # the child's cue to stop
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        child.stdout.close()


def serve_child(raw: str) -> None:
    """The sandbox child: print the base URL, then answer commands on stdin until it closes."""
    from miniapp_sync.clock import SystemClock
    from miniapp_sync.sandbox import Sandbox, SandboxConfig

    async def main() -> None:
        sandbox = Sandbox(SandboxConfig(**json.loads(raw)), clock=SystemClock())
        print(await sandbox.start(), flush=True)
        while command := (await asyncio.to_thread(sys.stdin.readline)).strip():
            stats = sandbox.stats
            if command == "reset":
                stats.reset()
                answer: Any = True
            else:
                answer = {
                    "requests": stats.requests,
                    "apiRequests": len(stats.timeline),
                    "responses": {str(k): v for k, v in stats.responses.items()},
                    "first": stats.timeline[0] if stats.timeline else None,
                    "last": stats.timeline[-1] if stats.timeline else None,
                    "maxPerSecond": stats.max_per_second,
                    "rateLimited": stats.rate_limited,
                    "byRoute": dict(stats.by_route),
                    "byTenant": {str(k): v for k, v in stats.by_tenant.items()},
                    "limitedByTenant": {str(k): v for k, v in stats.limited_by_tenant.items()},
                }
            print(json.dumps(answer), flush=True)
        await sandbox.stop()

    asyncio.run(main())
    os._exit(0)  # freeing the generated records one by one takes longer than the run


# ----------------------------------------------------------------------------- server processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        time.sleep(0.05)
    raise SystemExit(f"the server did not start listening within {seconds:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a process we started (graceful: uvicorn finishes in-flight requests), SIGKILL after 30 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def server(args: Sequence[str], port: int, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server process until the block ends, once it listens on ``port``."""
    process = subprocess.Popen(list(args), env=env, stdout=subprocess.DEVNULL)
    try:
        wait_listening(port, process)
        yield process
    finally:
        stop(process)


# ----------------------------------------------------------------------------- figures


def cpu_seconds(pid: int) -> float:
    """Return the CPU time a process has used so far (Linux: utime + stime of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Return the pids of a live process's children (Linux: /proc/PID/task/*/children)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            found.extend(int(child) for child in (task / "children").read_text().split())
    return found


def peak_rss_kb(pid: int) -> int:
    """Return a live process's peak resident set size so far, in KiB (Linux: VmHWM of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no VmHWM")


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def machine() -> str:
    load = os.getloadavg()[0]
    warning = "  (the machine is busy: figures will be low)" if load > 1.0 else ""
    return f"{os.cpu_count()} CPUs, load average {load:.2f} before the run{warning}"


if __name__ == "__main__":
    if sys.argv[1:2] != ["--serve"] or len(sys.argv) != 3:
        raise SystemExit("usage: harness.py --serve SANDBOX_CONFIG_JSON (started by harness.provider)")
    serve_child(sys.argv[2])
