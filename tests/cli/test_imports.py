"""Start-up: a command imports only what it uses (checked in ``sys.modules``, never timed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from miniapp_sync.store import Store

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "salla" / "definition.json5"

# The heavy libraries, each used by some commands only.
STORE = {"sqlalchemy", "alembic", "psycopg"}
QUEUE = {"procrastinate"}
NETWORK = {"aiohttp"}
SERVER = {"uvicorn", "starlette"}
MODELS = {"pydantic", "jsonpath", "rich.table", "rich.progress"}
CONSOLE = {"jinja2", "itsdangerous"}  # only a server with the console on
# Loaded where used: the event loop by commands that run one, the network module by rewrites.
LAZY = {"asyncio", "miniapp_sync.network"}


def imported_by(*args: str, cwd: Path | None = None) -> set[str]:
    """Run the CLI with ``args`` in a fresh interpreter and return the top-level modules it imported."""
    script = (
        "import sys\n"
        "from miniapp_sync.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print('\\n'.join(sys.modules), file=sys.stderr)\n"
        "raise SystemExit(code)\n"
    )
    command = [sys.executable, "-c", script, *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return set(done.stderr.splitlines())


def test_importing_the_cli_loads_no_store_queue_network_or_server_library() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys, miniapp_sync.cli; print('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.splitlines())
    assert not loaded & (STORE | QUEUE | NETWORK | SERVER | MODELS | CONSOLE)


def test_help_loads_no_store_queue_network_or_server_library() -> None:
    loaded = imported_by("--help")
    assert not loaded & (STORE | QUEUE | NETWORK | SERVER | MODELS | CONSOLE | LAZY)


def test_validate_loads_the_definition_model_but_no_store_network_or_server() -> None:
    loaded = imported_by("validate", str(EXAMPLE))
    assert "pydantic" in loaded  # it did validate
    assert not loaded & (STORE | QUEUE | NETWORK | SERVER)
    assert not loaded & LAZY  # validating runs no event loop and sends nothing
    # The example's JSONPaths are all plain ($.data.id): the JSONPath library is not needed, nor
    # croniter without a schedule, nor PyYAML for a JSON5 file.
    assert not loaded & {"jsonpath", "croniter", "yaml"}
    assert "phonenumbers" not in loaded  # nor phone parsing without a normalizePhone transform


def test_a_sync_process_loads_neither_migrations_nor_schedules() -> None:
    # What `sync` imports to run: the store, the job path (Work), the engine. Migrations (alembic,
    # mako, pygments) serve `db upgrade` and /readyz; croniter serves the schedulers.
    script = (
        "import sys\n"
        "import miniapp_sync.jobs, miniapp_sync.runtime, miniapp_sync.store, miniapp_sync.sync.engine\n"
        "print('\\n'.join(sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.splitlines())
    assert "sqlalchemy" in loaded
    assert not loaded & {"alembic", "mako", "croniter"}


def test_a_store_on_sqlite_loads_no_postgresql_dialect(tmp_path: Path) -> None:
    # SQLAlchemy's PostgreSQL dialect package imports every PostgreSQL driver's module: a store on
    # SQLite (its tables declared, an installation and records written and read) needs none of it.
    script = (
        "import sys\n"
        "from miniapp_sync.store import RecordWrite, Store\n"
        "import miniapp_sync.jobs, miniapp_sync.runtime, miniapp_sync.sync.engine\n"
        "with Store.open(sys.argv[1]) as store:\n"
        "    i = store.save_installation('t', 'ns', credentials=b'', metadata={}, user_input={})\n"
        "    writes = [RecordWrite(code='1', data={'a': 1})]\n"
        "    store.write_records(i.id, 'core:product', writes, source='bulk', checkpoint=('products', {'page': 2}))\n"
        "    assert store.get_record(i.id, 'core:product', '1') is not None\n"
        "print('\\n'.join(sys.modules))\n"
    )
    Store.open(str(tmp_path / "s.db")).close()  # migrated (Alembic's PostgreSQL support loads it) beforehand
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "s.db")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.splitlines())
    assert "sqlalchemy.dialects.sqlite" in loaded
    assert not {m for m in loaded if m.startswith("sqlalchemy.dialects.postgresql")}


@pytest.mark.parametrize(
    "command", [["records", "--tenant", "acme"], ["runs"], ["deliveries"], ["deadletters", "list"]]
)
def test_read_only_commands_load_neither_the_network_nor_the_job_queue(tmp_path: Path, command: list[str]) -> None:
    store = Store.open(str(tmp_path / "store.db"))
    store.save_installation("acme", "salla", credentials=b"", metadata={}, user_input={})
    store.close()
    loaded = imported_by(*command, "--store", str(tmp_path / "store.db"), cwd=tmp_path)
    assert "sqlalchemy" in loaded  # it did read the store
    assert not loaded & (QUEUE | NETWORK | SERVER | {"cryptography"})  # no vault either: nothing is decrypted
    assert "typer._adapters" not in loaded  # options are converted without Typer's pydantic adapters


# What a bulk sync of products does not run: the webhook side (inbox, outbox, the processor and
# its metrics) and the mappings of other resources (the example's customers normalise phones).
NOT_SYNCING = {
    "miniapp_sync.store.inbox",
    "miniapp_sync.store.outbox",
    "miniapp_sync.store.processing",
    "miniapp_sync.webhooks.processor",
    "miniapp_sync.webhooks.metrics",
    "prometheus_client",
    "phonenumbers",
}
# Spies on the first socket connection (the sync's first API request: the store is a file) and
# notes which modules were loaded by then; a JSON file gets those and the ones loaded in the end.
SPY = """
import json, socket, sys
first = []
connect = socket.socket.connect
def spy(self, address):
    if not first:
        first.append(sorted(sys.modules))
    return connect(self, address)
socket.socket.connect = spy
from miniapp_sync.cli import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    json.dump({"first": first[0] if first else None, "end": sorted(sys.modules)}, out)
raise SystemExit(code)
"""


def test_a_sync_process_loads_only_what_its_sync_runs(tmp_path: Path) -> None:
    import json

    from miniapp_sync.cli import main
    from miniapp_sync.sandbox import SandboxConfig
    from miniapp_sync.testing import sandbox_thread

    environ = {"MINIAPP_SYNC_SECRET_KEY": "import tests", "MINIAPP_SYNC_STORE": str(tmp_path / "store.sqlite")}
    with sandbox_thread(SandboxConfig(products=30, access_token="import-tests-token")) as (_, url):
        rewrites = ["--rewrite", f"https://api.salla.dev={url}", "--rewrite", f"https://accounts.salla.sa={url}"]
        install = ["install", str(EXAMPLE), "--tenant", "acme", "--credential", "accessToken=import-tests-token"]
        install.append("--no-sync")
        assert main([*install, *rewrites], environ=environ) == 0
        sync = ["sync", str(EXAMPLE), "--tenant", "acme", "--resource", "products", *rewrites]
        spied = tmp_path / "modules.json"
        command = [sys.executable, "-c", SPY, str(spied), *sync]
        env = {**os.environ, **environ}
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    modules = json.loads(spied.read_text())
    assert modules["first"] is not None, "the sync made no request"
    first, end = set(modules["first"]), set(modules["end"])
    assert {"aiohttp", "sqlalchemy", "miniapp_sync.sync.engine"} <= first  # the spy saw the sync's request
    assert not end & NOT_SYNCING, sorted(end & NOT_SYNCING)
    # Rich draws the summary at the end; whether the output is a terminal is asked after the first page.
    assert "rich.console" in end
    assert not {m for m in first if m == "rich" or m.startswith("rich.")}
