"""Exit codes as the README says: 0, 1 a runtime failure, 2 bad usage or an invalid definition.

A busy port is a clear error naming the port and what to do, and ``serve`` says "serving" only
once it answers.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from miniapp_sync.cli import main
from miniapp_sync.errors import ListenError
from miniapp_sync.listening import listen

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "examples" / "salla" / "definition.json5")
PRODUCTS_PAGE = str(ROOT / "examples" / "salla" / "samples" / "api" / "products.page1.json")


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another process holds: a real socket bound and listening on 127.0.0.1."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MINIAPP_SYNC_SECRET_KEY", "exit code tests")
    path = tmp_path / "store.sqlite"
    monkeypatch.setenv("MINIAPP_SYNC_STORE", str(path))
    return path


def test_sync_of_a_misspelt_resource_is_bad_usage_with_did_you_mean(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sync", EXAMPLE, "--tenant", "acme", "--resource", "prodcts"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no resource 'prodcts'" in err
    assert "did you mean 'products'?" in err
    assert not store.exists()  # refused before any store was opened


def test_map_of_a_misspelt_resource_is_bad_usage_with_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["map", EXAMPLE, "--resource", "prodcts", "--input", PRODUCTS_PAGE])
    assert code == 2
    assert "did you mean 'products'?" in capsys.readouterr().err


def test_an_unknown_option_is_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", EXAMPLE, "--no-such-option"]) == 2
    assert "No such option" in capsys.readouterr().err


def test_serve_on_a_busy_port_says_which_port_and_what_to_do(
    store: Path, busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["serve", "-d", EXAMPLE, "--port", str(busy_port)])
    out, err = capsys.readouterr()
    assert code == 1
    assert f"port {busy_port} is already in use" in err
    assert "choose a free port with --port" in err
    assert "internal error" not in err
    assert "report it" not in err
    assert "serving" not in out


def test_sandbox_on_a_busy_port_says_which_port_and_what_to_do(
    busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sandbox", "--port", str(busy_port)])
    err = capsys.readouterr().err
    assert code == 1
    assert f"port {busy_port} is already in use" in err
    assert "internal error" not in err


def test_serve_says_serving_only_when_it_answers(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "MINIAPP_SYNC_STORE": str(tmp_path / "store.sqlite"),
        "MINIAPP_SYNC_SECRET_KEY": "exit code tests",
    }
    command = [sys.executable, "-m", "miniapp_sync", "serve", "-d", EXAMPLE, "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as server:
        try:
            assert server.stdout is not None
            line = server.stdout.readline()  # blocks until the line is printed
            found = re.search(r"serving salla on (http://127\.0\.0\.1:\d+)", line)
            assert found, line
            # The line is out: the server must answer now, without a retry or a wait.
            with urllib.request.urlopen(found.group(1) + "/healthz", timeout=10) as response:
                assert response.status == 200
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)


@pytest.mark.parametrize(("definition", "code"), [(EXAMPLE, 0), (PRODUCTS_PAGE, 2)])
def test_a_whole_process_exits_with_the_code_and_all_of_its_output(definition: str, code: int) -> None:
    # The entry point freezes the objects the process made before exiting (its exit then skips
    # walking them): the exit code and every line written must still come out.
    command = [sys.executable, "-m", "miniapp_sync", "validate", definition, "--format", "json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == code, done.stderr
    document = json.loads(done.stdout)  # complete: it parses
    assert document["valid"] is (code == 0)


# The entry point, as the console script runs it, with something of the caller's at exit: an
# atexit handler (it writes to stdout, after the command's own output), and optionally a thread
# that is still working when the command returns. It waits for what a normal exit does first
# (threading marks the main thread stopped, then joins the others) and only then writes.
ENTRY = """
import atexit, sys, threading, time
from miniapp_sync.cli import run
atexit.register(lambda: print("atexit handler ran"))
if sys.argv[1] == "thread":
    def finish():
        while threading.main_thread().is_alive():
            time.sleep(0.01)
        print("thread finished", flush=True)
    threading.Thread(target=finish).start()
sys.argv = ["miniapp-sync", *sys.argv[2:]]
run()
"""


@pytest.mark.parametrize("thread", ["none", "thread"])
@pytest.mark.parametrize(("definition", "code"), [(EXAMPLE, 0), (PRODUCTS_PAGE, 2)])
def test_the_entry_point_runs_atexit_handlers_waits_for_threads_and_flushes(
    definition: str, code: int, thread: str
) -> None:
    # The entry point ends the process without tearing its modules down (cli._exit): the exit
    # code, every line written and the atexit handlers must still come out, and a thread still
    # running must be waited for, as on any exit.
    command = [sys.executable, "-c", ENTRY, thread, "validate", definition, "--format", "json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == code, done.stderr
    output, _, rest = done.stdout.rpartition("}\n")
    assert json.loads(output + "}")["valid"] is (code == 0)
    lines = rest.splitlines()
    assert lines == (["thread finished", "atexit handler ran"] if thread == "thread" else ["atexit handler ran"])


@pytest.mark.parametrize("port", [-1, 65536, 99999])
def test_a_port_outside_0_to_65535_is_refused_not_wrapped(port: int) -> None:
    # Before, 99999 listened on 34463 and 65536 on a random free port, each announced as "serving";
    # -1 was blamed on the host.
    with pytest.raises(ListenError, match=rf"^cannot listen on 127.0.0.1:{port}: a port is a number from 0 to 65535"):
        listen("127.0.0.1", port, option="--metrics-port").close()


def test_serve_on_a_port_out_of_range_says_so(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["serve", "-d", EXAMPLE, "--port", "99999"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "a port is a number from 0 to 65535 (hint: choose one with --port)" in err
    assert "serving" not in out
