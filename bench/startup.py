"""Benchmark: start-up of whole ``miniapp-sync`` processes, as a user runs them.

Setup: the bundled sandbox serves 2,000 products (100 a page, no latency, no rate limit) from a
child process started beforehand; it notes the monotonic time of the first API request, which
on Linux is one clock for every process. A tenant is installed once into a store in a temporary
folder (``MINIAPP_SYNC_SECRET_KEY`` set), and each sync runs on a fresh copy of that folder.
The definition is examples/salla's with products at page size 100, no details, and a rate
budget that never binds. Timed, interleaved, ``--repeat`` times (best and median printed):

- ``python -c pass``: the interpreter's own start-up, the floor every figure is compared with;
- ``miniapp-sync --help`` (target ≤ 0.25 s wall);
- ``miniapp-sync validate examples/salla/definition.json5`` (target ≤ 0.5 s wall);
- ``miniapp-sync sync … --resource products`` of 2,000 products: wall time, and its start-up,
  from process start to the sandbox's first API request (target ≤ 0.4 s);
- the same sync's start-up CPU: the console script run by a wrapper that ends the process
  (``os._exit``) as it opens its first connection, the sync's first request (the store is a
  file), its CPU (user + system) read as a child's. On a loaded machine the wall figures grow
  with the load; this one much less, so it is the one to compare before/after.

Every process runs with its modules' bytecode cached (``PYTHONPYCACHEPREFIX`` in the scratch
folder, filled by one untimed round first), as an installed package has it: with
``PYTHONDONTWRITEBYTECODE`` set, each process would compile every module of ours again (~0.15 s
CPU of a ``validate``), a cost no user pays.

``python -X importtime -c 'import miniapp_sync.cli'`` says what the imports cost, and
``--profile`` runs one sync under cProfile and prints what its start-up is made of.

Run: ``.venv/bin/python bench/startup.py [--repeat 7] [--profile]`` (about half a minute).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import EXAMPLE, Provider, command, provider

KEY = "bench-key-not-a-secret"
PAGE_SIZE = 100


# ----------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Ran:
    """One process: when it started (monotonic), wall seconds from spawn to exit, and its CPU seconds.

    On a machine shared with other work the wall time of a CPU-bound start-up grows with the
    load; its CPU time (user + system) much less, so both are printed.
    """

    started: float
    seconds: float
    cpu: float


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(args: Sequence[str], env: dict[str, str] | None = None, *, check: bool = True) -> Ran:
    """Run a process to its end, output discarded; return its timing."""
    cpu, started = _children_cpu(), time.monotonic()
    done = subprocess.run(list(args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds, cpu = time.monotonic() - started, _children_cpu() - cpu
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return Ran(started, seconds, cpu)


def cache_bytecode(folder: Path) -> None:
    """Make every process started from here on read and write its modules' bytecode under ``folder``."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(folder)


def derived_definition(
    folder: Path, *, resources: dict[str, dict[str, Any]], rate: float, page_size: int = PAGE_SIZE
) -> Path:
    """Write the example definition with each named resource changed as given; return the file."""
    from miniapp_sync.definition.loader import load_file

    document, _ = load_file(EXAMPLE)
    document["sync"]["syncConfiguration"]["rateLimitPerSecond"] = rate
    for name, changes in resources.items():
        resource = document["sync"]["resources"][name]
        resource["pagination"] = {**resource["pagination"], "defaultLimit": page_size, "maxLimit": page_size}
        resource.update(changes)
    path = folder / "definition.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


@dataclass(frozen=True)
class Tenant:
    """A store folder with one installed tenant, and how to run commands against it."""

    folder: Path
    definition: Path
    rewrites: tuple[str, ...]

    def env(self, folder: Path | None = None) -> dict[str, str]:
        store = (folder or self.folder) / "store.sqlite"
        return {**os.environ, "MINIAPP_SYNC_SECRET_KEY": KEY, "MINIAPP_SYNC_STORE": str(store)}

    def sync_args(self, resource: str) -> list[str]:
        return [*command(), "sync", str(self.definition), "--tenant", "bench", "--resource", resource, *self.rewrites]

    @contextlib.contextmanager
    def fresh_copy(self) -> Iterator[Path]:
        """Yield a copy of the installed store's folder (so every sync starts from the same empty store)."""
        with tempfile.TemporaryDirectory() as scratch:
            copy = Path(scratch) / "store"
            shutil.copytree(self.folder, copy)
            yield copy


def install(folder: Path, serving: Provider, definition: Path) -> Tenant:
    """Install the tenant ``bench`` with the sandbox's access token (not timed)."""
    store = folder / "store"
    store.mkdir()
    rewrites = ("--rewrite", f"https://api.salla.dev={serving.base_url}")
    rewrites += ("--rewrite", f"https://accounts.salla.sa={serving.base_url}")
    tenant = Tenant(store, definition, rewrites)
    # --no-sync: every timed sync is then a first import into an empty store (all records written),
    # not a re-sync finding every record unchanged, as the install's own import would leave it.
    args = [*command(), "install", str(definition), "--tenant", "bench", "--no-sync"]
    credentials = [
        "--credential",
        "accessToken=sandbox-access-token",
        "--credential",
        "refreshToken=sandbox-refresh-token",
    ]
    run([*args, *credentials, *rewrites], tenant.env())
    return tenant


def timed_sync(tenant: Tenant, serving: Provider, resource: str, records: int) -> tuple[Ran, dict[str, Any]]:
    """Run one whole ``sync`` process on a fresh store; return its timing and what the sandbox saw of it."""
    with tenant.fresh_copy() as copy:
        serving.reset()
        ran = run(tenant.sync_args(resource), tenant.env(copy))
        stats = serving.stats()
        counted = _count(copy, resource)
    if counted != records:
        raise RuntimeError(f"the sync stored {counted} {resource}, expected {records}")
    if stats["first"] is None:
        raise RuntimeError("the sync made no API request")
    return ran, stats


# Runs what command() names (the console script, or ``python -m miniapp_sync``) with the rest of
# the line, and ends the process as it opens its first connection (the store is a file), before
# anything is sent.
_UNTIL_FIRST_REQUEST = """
import os, runpy, socket, sys
def _stop(self, address):
    os._exit(0)
socket.socket.connect = _stop
if sys.argv[1:3] == [sys.executable, "-m"]:
    sys.argv = sys.argv[3:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
raise SystemExit("the sync made no request")
"""


def startup_cpu(tenant: Tenant, resource: str) -> float:
    """Return the CPU seconds of one ``sync`` process from its start to its first request (see the docstring)."""
    with tenant.fresh_copy() as copy:
        return run([sys.executable, "-c", _UNTIL_FIRST_REQUEST, *tenant.sync_args(resource)], tenant.env(copy)).cpu


def _count(folder: Path, resource: str) -> int:
    import sqlite3

    content_type = {"products": "core:product", "orders": "ecommerce:orders"}[resource]
    with contextlib.closing(sqlite3.connect(folder / "store.sqlite")) as db:
        row = db.execute("SELECT count(*) FROM records WHERE content_type = ?", (content_type,)).fetchone()
    return int(row[0])


# ----------------------------------------------------------------------------- report


def summary(values: list[float]) -> str:
    """Best and median, in seconds."""
    return f"best {min(values):6.3f} s   median {statistics.median(values):6.3f} s"


def verdict(value: float, target: float) -> str:
    """Say whether a figure (best of the runs) meets its target."""
    return f"target ≤ {target:.2f} s: {'met' if value <= target else 'NOT met'}"


def profile_sync(tenant: Tenant, serving: Provider, resource: str) -> None:
    """Run one sync under cProfile and print the functions that take the most cumulative time."""
    with tenant.fresh_copy() as copy, tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "sync.prof"
        args = tenant.sync_args(resource)
        run([sys.executable, "-m", "cProfile", "-o", str(out), *args], tenant.env(copy))
        import pstats

        print(f"\ncProfile of one sync ({' '.join(Path(a).name if '/' in a else a for a in args[:3])} …):")
        pstats.Stats(str(out)).sort_stats("cumulative").print_stats(25)


def _measure(
    repeat: int,
    processes: dict[str, list[str]],
    tenant: Tenant,
    serving: Provider,
    n: int,
    figures: dict[str, list[float]],
    cpu: dict[str, list[float]],
) -> None:
    """Run every process ``repeat`` times, interleaved (a burst of load elsewhere hits every figure alike)."""
    for _ in range(repeat):
        for key, args in processes.items():
            ran = run(args)
            figures[key].append(ran.seconds)
            cpu[key].append(ran.cpu)
        ran, stats = timed_sync(tenant, serving, "products", n)
        figures["sync"].append(ran.seconds)
        cpu["sync"].append(ran.cpu)
        figures["startup"].append(stats["first"] - ran.started)  # process start to first request
        cpu["startup"].append(startup_cpu(tenant, "products"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs of each process (best and median are printed)")
    parser.add_argument("--records", type=int, default=2_000, help="products synced")
    parser.add_argument("--profile", action="store_true", help="also profile one sync with cProfile")
    args = parser.parse_args()
    n = args.records
    figures: dict[str, list[float]] = {"pass": [], "help": [], "validate": [], "sync": [], "startup": []}
    cpu: dict[str, list[float]] = {"pass": [], "help": [], "validate": [], "sync": [], "startup": []}
    processes = {
        "pass": [sys.executable, "-c", "pass"],
        "help": [*command(), "--help"],
        "validate": [*command(), "validate", str(EXAMPLE)],
    }
    with tempfile.TemporaryDirectory() as scratch:
        cache_bytecode(Path(scratch) / "bytecode")
        with provider(products=n, per_page_max=PAGE_SIZE) as serving:
            folder = Path(scratch)
            definition = derived_definition(folder, resources={"products": {"expandDetails": False}}, rate=100_000)
            tenant = install(folder, serving, definition)
            for args_ in processes.values():  # untimed: fills the bytecode cache
                run(args_)
            timed_sync(tenant, serving, "products", n)
            _measure(args.repeat, processes, tenant, serving, n, figures, cpu)
            if args.profile:
                profile_sync(tenant, serving, "products")
    floor = min(figures["pass"])
    print(f"Whole processes, {args.repeat} runs each (interleaved); floor = python -c pass")
    print(f"python -c pass:                 {summary(figures['pass'])}")
    for key, label, target in (
        ("help", "miniapp-sync --help:", 0.25),
        ("validate", "validate (the example):", 0.50),
        ("startup", f"sync of {n:,}: start-up:", 0.40),
    ):
        best = min(figures[key])
        used = f"CPU {min(cpu[key]):.3f} s" if key in cpu else " " * 11
        print(f"{label:<32}{summary(figures[key])}   {used}   {best / floor:5.1f}× floor   {verdict(best, target)}")
    whole = min(figures["sync"])
    used = f"CPU {min(cpu['sync']):.3f} s"
    print(f"sync of {n:,}: whole process:  {summary(figures['sync'])}   {used}   {whole / floor:5.1f}× floor")
    print(json.dumps({k: [round(v, 4) for v in vs] for k, vs in figures.items()}), file=sys.stderr)


if __name__ == "__main__":
    main()
