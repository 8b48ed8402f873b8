"""`ilp-paychan receive` and `ilp-paychan pay` as real subprocesses over a real loopback link.

The receiver's plugin listens on 127.0.0.1, the payer's dials it; both are configured by files
of `serve`'s shape. The receiver caps packets (`--max-packet-amount`, answered with F08 as a
connector would) so a payment of 1000 goes in several packets. Every wait is bounded; every
process is killed at the end of its test.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.cli import cli_env

from .conftest import CLI, free_port, run_cli, write_config

WAIT = 60.0
SECRET = "pay-receive-test-secret"
PREFIX = "test.payrecv."


def v1_configs(tmp_path: Path) -> tuple[Path, Path]:
    """(receiver, payer) config files: a v1 trustline listener and its client."""
    port = free_port()
    receiver = {
        "listener": {"port": port, "host": "127.0.0.1"},
        "incomingSecret": SECRET,
        "prefix": PREFIX,
        "info": {
            "prefix": PREFIX,
            "currencyCode": "XRP",
            "currencyScale": 6,
            "connectors": [PREFIX + "server"],
        },
        "maxBalance": str(10**12),
        "minBalance": str(-(10**12)),
    }
    payer = {
        "server": f"btp+ws://:{SECRET}@127.0.0.1:{port}",
        "maxBalance": str(10**12),
        "minBalance": str(-(10**12)),
    }
    return (
        write_config(tmp_path / "receiver.json", receiver),
        write_config(tmp_path / "payer.json", payer),
    )


def btp_configs(tmp_path: Path) -> tuple[Path, Path]:
    """(receiver, payer) config files: a BTP 2.0 listener (which gives its client an address
    over ILDCP) and its client, as ledger maps naming ilp-plugin-btp."""
    port = free_port()
    receiver = {
        "test.btprecv.": {
            "plugin": "ilp-plugin-btp",
            "options": {
                "listener": {"port": port, "host": "127.0.0.1", "secret": SECRET},
                "address": "test.btprecv.server",
                "ildcp": {
                    "clientAddress": "test.btprecv.client",
                    "assetCode": "XRP",
                    "assetScale": 6,
                },
            },
        }
    }
    payer = {
        "test.btppay.": {
            "plugin": "ilp-plugin-btp",
            "options": {"server": f"btp+ws://payer:{SECRET}@127.0.0.1:{port}"},
        }
    }
    return (
        write_config(tmp_path / "receiver.json", receiver),
        write_config(tmp_path / "payer.json", payer),
    )


class Receiver:
    """`ilp-paychan receive` in a subprocess; its stdout lines are collected as they come."""

    def __init__(self, config: Path, data_dir: Path, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [
                *CLI,
                "receive",
                "--plugin-config",
                str(config),
                "--data-dir",
                str(data_dir),
                "--spsp",
                "127.0.0.1:0",
                *extra,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.stderr = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next_line(self, timeout: float = WAIT) -> str:
        """The next line on stdout; fails (with stderr) if none comes in time."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"receive printed nothing more; seen {self.seen}") from None
        if line is None:
            self.proc.wait(10)
            assert self.proc.stderr is not None
            raise AssertionError(f"receive ended: {self.seen} stderr: {self.proc.stderr.read()}")
        self.seen.append(line)
        return line

    def wait_ready_json(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.next_line())
        assert event["event"] == "ready", event
        return event

    def money_until(self, total: int, timeout: float = WAIT) -> list[dict[str, Any]]:
        """The JSON money events up to the one whose total reaches `total`."""
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            event = json.loads(self.next_line(max(0.1, deadline - time.monotonic())))
            assert event["event"] == "money", event
            events.append(event)
            if int(event["total"]) >= total:
                return events

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, list[str]]:
        """Send `sig`; the exit code and the lines printed after it."""
        self.proc.send_signal(sig)
        code = self.proc.wait(WAIT)
        rest: list[str] = []
        while True:
            line = self.lines.get(timeout=10)
            if line is None:
                break
            rest.append(line)
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()
        return code, rest

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def receivers() -> Iterator[Any]:
    started: list[Receiver] = []

    def start(config: Path, data_dir: Path, *extra: str) -> Receiver:
        receiver = Receiver(config, data_dir, *extra)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.kill()


def pay(config: Path, data_dir: Path, to: str, amount: str, *extra: str) -> Any:
    return run_cli(
        "pay",
        "--plugin-config",
        str(config),
        "--data-dir",
        str(data_dir),
        "--to",
        to,
        "--amount",
        amount,
        *extra,
        timeout=WAIT + 30,
    )


@pytest.mark.parametrize("link", ["v1", "btp"])
def test_pay_and_receive_end_to_end(tmp_path: Path, receivers: Any, link: str) -> None:
    receiver_config, payer_config = (v1_configs if link == "v1" else btp_configs)(tmp_path)
    receiver = receivers(receiver_config, tmp_path, "--json", "--max-packet-amount", "300")
    ready = receiver.wait_ready_json()
    url = ready["spsp"]
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/.well-known/pay")

    result = pay(payer_config, tmp_path, url, "1000", "--json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["sent"] == "1000"
    assert printed["delivered"] == "1000"
    assert printed["destination"].startswith(ready["account"] + ".")
    assert result.stderr == ""

    money = receiver.money_until(1000)
    assert len(money) >= 4  # at most 300 a packet
    assert all(0 < int(event["amount"]) <= 300 for event in money)
    assert sum(int(event["amount"]) for event in money) == 1000
    assert money[-1]["total"] == "1000"

    code, rest = receiver.stop(signal.SIGTERM)
    assert code == 0, receiver.stderr
    assert json.loads(rest[-1]) == {"event": "stopped", "total": "1000"}


def test_text_output_and_sigint(tmp_path: Path, receivers: Any) -> None:
    receiver_config, payer_config = v1_configs(tmp_path)
    receiver = receivers(receiver_config, tmp_path)
    ready = receiver.next_line()
    assert ready.startswith("ready spsp=http://127.0.0.1:")
    url = ready.split()[1].removeprefix("spsp=")

    result = pay(payer_config, tmp_path, url, "250")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sent=250 delivered=250 destination=")
    line = receiver.next_line()
    assert line.startswith("money amount=250 total=250 ")

    code, rest = receiver.stop(signal.SIGINT)
    assert code == 0
    assert rest[-1] == "stopped total=250"


def test_rate_below_the_minimum_exits_5(tmp_path: Path, receivers: Any) -> None:
    receiver_config, payer_config = v1_configs(tmp_path)
    receiver = receivers(receiver_config, tmp_path, "--json")
    url = receiver.wait_ready_json()["spsp"]
    result = pay(payer_config, tmp_path, url, "100", "--min-rate", "2", "--json")
    assert result.returncode == 5, result.stderr
    assert "exchange rate" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert json.loads(result.stdout)["delivered"] == "0"


def test_no_route_exits_4(tmp_path: Path, receivers: Any) -> None:
    """The SPSP answer names a receiver the payer's link does not lead to."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a_receiver, _ = v1_configs(tmp_path / "a")
    b_receiver, b_payer = btp_configs(tmp_path / "b")
    elsewhere = receivers(a_receiver, tmp_path, "--json")
    url = elsewhere.wait_ready_json()["spsp"]
    receivers(b_receiver, tmp_path, "--json").wait_ready_json()
    result = pay(b_payer, tmp_path, url, "100")
    assert result.returncode == 4, result.stderr
    assert "no route" in result.stderr


def test_bad_pointer_exits_2(tmp_path: Path) -> None:
    _, payer_config = v1_configs(tmp_path)
    result = pay(payer_config, tmp_path, "$example.com:8080/bob", "10")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "ilp-paychan pay: --to: a payment pointer has no port (RFC 26); "
        "give the endpoint's URL instead"
    )
    result = pay(payer_config, tmp_path, "http://example.com/bob", "10")
    assert result.returncode == 2
    assert "plain http:// only to a loopback host" in result.stderr


def test_unreachable_spsp_exits_3(tmp_path: Path) -> None:
    _, payer_config = v1_configs(tmp_path)
    url = f"http://127.0.0.1:{free_port()}/.well-known/pay"
    result = pay(payer_config, tmp_path, url, "10", "--json")
    assert result.returncode == 3
    message = result.stderr.strip()
    assert message.startswith(f"ilp-paychan pay: SPSP: SPSP endpoint {url} is unreachable")
    assert "\n" not in message
    assert result.stdout == ""


@pytest.mark.parametrize("amount", ["0", "-5", "1.5", "abc", "1e3"])
def test_invalid_amount_exits_2(tmp_path: Path, amount: str) -> None:
    _, payer_config = v1_configs(tmp_path)
    result = pay(payer_config, tmp_path, "$example.com", amount)
    assert result.returncode == 2
    assert "--amount" in result.stderr
    assert "positive integer" in result.stderr


def test_bad_config_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    result = pay(missing, tmp_path, "$example.com", "10")
    assert result.returncode == 2
    assert "cannot read" in result.stderr
    bad = write_config(tmp_path / "bad.json", {"listener": {"port": "x"}, "incomingSecret": "s"})
    result = run_cli("receive", "--plugin-config", str(bad), "--spsp", "127.0.0.1:0")
    assert result.returncode == 2
    assert "listener" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_receive_needs_host_and_port(tmp_path: Path) -> None:
    receiver_config, _ = v1_configs(tmp_path)
    result = run_cli("receive", "--plugin-config", str(receiver_config), "--spsp", "8080")
    assert result.returncode == 2
    assert "expected HOST:PORT" in result.stderr
    result = run_cli(
        "receive",
        "--plugin-config",
        str(receiver_config),
        "--spsp",
        "127.0.0.1:0",
        "--spsp-path",
        "pay?x",
    )
    assert result.returncode == 2
    assert result.stderr.startswith("ilp-paychan receive: --spsp-path: expected an absolute URL")


def test_pay_help_lists_the_exit_codes() -> None:
    result = run_cli("pay", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for words in ("3 the SPSP endpoint", "4 no route", "5 the exchange rate", "7 the payment"):
        assert words in text


def test_pay_stopped_by_sigterm_reports_what_moved(tmp_path: Path, receivers: Any) -> None:
    receiver_config, payer_config = v1_configs(tmp_path)
    receiver = receivers(receiver_config, tmp_path, "--json", "--max-packet-amount", "1")
    url = receiver.wait_ready_json()["spsp"]
    payer = subprocess.Popen(
        [*CLI, "pay", "--plugin-config", str(payer_config), "--to", url, "--amount", "1000000"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:
        receiver.money_until(1)  # money is moving
        payer.send_signal(signal.SIGTERM)
        out, err = payer.communicate(timeout=WAIT)
    finally:
        if payer.poll() is None:
            payer.kill()
            payer.wait(10)
    assert payer.returncode == 128 + signal.SIGTERM
    fields = dict(word.split("=", 1) for word in out.split())
    assert 0 < int(fields["sent"]) < 1_000_000
    assert fields["error"] == "stopped"
    assert err.startswith("ilp-paychan pay: stopped by SIGTERM after sending ")
