"""`ilp-paychan demo` at its edges: stopped by a signal, and run twice over the same stores."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from testkit.cli import cli_env

from .conftest import CLI, WAIT, run_cli

#: Far more payments than fit in the time before the signal: the demo is surely still paying.
MANY = "100000"
PAYING = "ilp-paychan demo: paying"


class DemoProcess:
    """`ilp-paychan demo ARGS` in the background, its stdout read line by line by a thread."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.temp_root = tmp_path / "tmp"  # where the demo's temporary stores go (TMPDIR)
        self.temp_root.mkdir()
        self._stderr_path = tmp_path / "demo-stderr.txt"
        env = cli_env({"TMPDIR": str(self.temp_root)})
        with self._stderr_path.open("w") as stderr:
            self.proc = subprocess.Popen(
                [*CLI, "demo", *args],
                stdout=subprocess.PIPE,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                text=True,
                env=env,
            )
        self.lines: list[str] = []
        self._new: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._new.put(line)
        self._new.put(None)

    def wait_for_line(self, start: str, timeout: float = WAIT) -> str:
        """The first stdout line beginning with `start` (fails after `timeout` s or at EOF)."""
        while True:
            try:
                line = self._new.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no line {start!r} within {timeout} s; stdout so far: {self.lines}")
            if line is None:
                pytest.fail(f"the demo ended without a line {start!r}: {self.lines}")
            if line.startswith(start):
                return line.rstrip("\n")

    def finish(self, timeout: float = WAIT) -> tuple[int, list[str], str]:
        """(exit code, stdout lines, stderr) once the demo has exited by itself."""
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        return code, self.lines, self._stderr_path.read_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT)


@pytest.fixture
def demo_process(tmp_path: Path) -> Any:
    started: list[DemoProcess] = []

    def start(*args: str) -> DemoProcess:
        demo = DemoProcess(tmp_path, *args)
        started.append(demo)
        return demo

    yield start
    for demo in started:
        demo.kill()


def store_dir_of(first_line: str) -> Path:
    """The folder the demo's first line names: '... stores in DIR'."""
    _, sep, folder = first_line.partition(", stores in ")
    assert sep, first_line
    return Path(folder)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_signal_ends_the_demo_with_one_line_and_removes_its_stores(
    demo_process: Any, sig: signal.Signals, code: int
) -> None:
    demo = demo_process("--payments", MANY, "--no-progress")
    stores = store_dir_of(demo.wait_for_line("ilp-paychan demo: "))
    demo.wait_for_line(PAYING)
    assert stores.parent == demo.temp_root
    assert (stores / "server.db").exists()

    demo.proc.send_signal(sig)
    exit_code, stdout, stderr = demo.finish()

    assert exit_code == code, stderr
    assert stderr.splitlines() == [
        f"ilp-paychan demo: stopped by {sig.name}; temporary stores removed"
    ]
    assert "Traceback" not in stderr + "\n".join(stdout)
    assert not any("Balances" in line for line in stdout)  # stopped, not finished
    assert not stores.exists()
    assert list(demo.temp_root.iterdir()) == []


def test_ctrl_c_keeps_a_store_dir_and_the_next_run_adds_up(
    demo_process: Any, tmp_path: Path
) -> None:
    stores = tmp_path / "stores"
    demo = demo_process("--payments", MANY, "--no-progress", "--store-dir", str(stores))
    demo.wait_for_line(PAYING)
    demo.proc.send_signal(signal.SIGINT)
    exit_code, _, stderr = demo.finish()
    assert exit_code == 130, stderr
    assert stderr.splitlines() == [
        f"ilp-paychan demo: stopped by SIGINT; the stores are kept in {stores}"
    ]
    assert (stores / "server.db").exists()
    assert (stores / "client.db").exists()

    again = run_demo_json(stores)
    assert again["balances"]["agree"] is True


def run_demo_json(stores: Path, payments: int = 20) -> dict[str, Any]:
    args = ["--payments", str(payments), "--in-flight", "5", "--json", "--store-dir", str(stores)]
    result = run_cli("demo", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def test_a_second_run_over_the_same_stores_checks_its_own_change(tmp_path: Path) -> None:
    stores = tmp_path / "stores"
    first = run_demo_json(stores)
    second = run_demo_json(stores)

    one, two = first["balances"], second["balances"]
    assert (one["server_before"], one["client_before"]) == ("0", "0")
    assert (two["server_before"], two["client_before"]) == (one["server"], one["client"])
    assert two["agree"] is True
    change = int(two["server_change"])
    assert change != 0  # the amounts are chosen so that a run moves money
    assert change == int(two["expected_server_change"]) == -int(two["client_change"])
    assert int(two["server"]) == int(one["server"]) + change
    # the same deterministic plan: the second run moves what the first did, and counts only itself
    assert change == int(one["server_change"])
    for direction in second["directions"].values():
        assert sum(direction["outcomes"].values()) == 10
        assert direction["outcomes"] == {"fulfilled": 8, "rejected": 1, "expired": 1}
        assert direction["errors"] == 0

    third = run_cli("demo", "--payments", "20", "--no-progress", "--store-dir", str(stores))
    assert third.returncode == 0, third.stdout + third.stderr
    assert "MISMATCH" not in third.stdout
    assert "OK: server change == -client change == fulfilled sum" in third.stdout
