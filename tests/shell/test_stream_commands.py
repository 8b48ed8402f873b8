"""Unit tests of the pay/receive plumbing: the plugin config loader, the exit code of each
STREAM failure, the F08 packet cap, and `demo --stream` end to end."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan.codec import ilp4
from ilp_paychan.shell.config import ConfigError
from ilp_paychan.shell.exit_codes import EXIT_CODES
from ilp_paychan.shell.plugin_config import load_plugin_spec
from ilp_paychan.shell.stream_commands import (
    MaxPacketAmount,
    Output,
    _exit_code_of,
    _report_failure,
)
from ilp_paychan.stream import errors

from .conftest import CLI, run_cli, write_config

V1_LISTENER = {
    "listener": {"port": 0, "host": "127.0.0.1"},
    "incomingSecret": "a-long-secret",
    "prefix": "test.unit.",
    "info": {"prefix": "test.unit.", "currencyCode": "XRP", "currencyScale": 6},
}
BTP_LISTENER = {
    "listener": {"port": 0, "host": "127.0.0.1", "secret": "btp-listener-secret"},
    "ildcp": {"clientAddress": "test.unit.child", "assetCode": "XRP", "assetScale": 6},
}


def test_v1_options_object(tmp_path: Path) -> None:
    spec = load_plugin_spec(str(write_config(tmp_path / "c.json", V1_LISTENER)), str(tmp_path))
    assert (spec.kind, spec.name) == ("v1", "test.unit.")
    assert spec.listener_address() is None  # a v1 link answers ILDCP itself


def test_v1_ledger_map_with_a_store(tmp_path: Path) -> None:
    document = {"test.unit.": {"plugin": "ilp-plugin-virtual", "store": True, "options": {}}}
    document["test.unit."]["options"] = {"server": "btp+ws://:s@127.0.0.1:9", "maxBalance": "9"}
    data = tmp_path / "not-yet"
    spec = load_plugin_spec(str(write_config(tmp_path / "c.json", document)), str(data))
    assert spec.kind == "v1"
    assert spec.options["store"].endswith("not-yet/test.unit.db")
    spec.build()
    assert data.is_dir()  # made for the SQLite file, as serve does


def test_btp_ledger_map_and_options_object(tmp_path: Path) -> None:
    document = {"test.unit.": {"plugin": "ilp-plugin-btp", "options": BTP_LISTENER}}
    spec = load_plugin_spec(str(write_config(tmp_path / "a.json", document)), str(tmp_path))
    assert (spec.kind, spec.name) == ("btp", "test.unit.")
    assert spec.listener_address() == "test.unit"
    flat = {"plugin": "ilp-plugin-btp", "server": "btp+ws://me:tok@127.0.0.1:9"}
    spec = load_plugin_spec(str(write_config(tmp_path / "b.json", flat)), str(tmp_path))
    assert spec.kind == "btp"
    assert spec.listener_address() is None
    assert type(spec.build()).__name__ == "BtpPlugin"


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (
            {
                "a.": {"plugin": "ilp-plugin-btp", "options": BTP_LISTENER},
                "b.": {"plugin": "ilp-plugin-btp", "options": BTP_LISTENER},
            },
            'expected one ledger for this command, found "a.", "b."',
        ),
        (
            {"x.": {"plugin": "ilp-plugin-btp", "options": {"server": "ws://nope"}}},
            'ledger "x.": options: ',
        ),
        (
            {"x.": {"plugin": "ilp-plugin-btp", "options": {**BTP_LISTENER, "bogus": 1}}},
            "bogus",
        ),
        (
            {"x.": {"plugin": "ilp-plugin-btp", "options": BTP_LISTENER, "stor": True}},
            'ledger "x.": stor: unknown field',
        ),
        ({**V1_LISTENER, "receiverSecret": "abcd"}, "receiverSecret: is for serve's"),
        (
            {
                "a.": {"options": {"server": "btp+ws://:s@127.0.0.1:9"}},
                "b.": {"options": {"server": "btp+ws://:s@127.0.0.1:8"}},
            },
            'expected one ledger for this command, found "a.", "b."',
        ),
    ],
)
def test_bad_plugin_configs_are_one_line(tmp_path: Path, document: Any, words: str) -> None:
    path = write_config(tmp_path / "c.json", document)
    with pytest.raises(ConfigError) as info:
        load_plugin_spec(str(path), str(tmp_path))
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_a_btp_secret_is_never_shown(tmp_path: Path) -> None:
    options = {"listener": {"port": "x", "host": "127.0.0.1", "secret": "hunter2-secret"}}
    document = {"x.": {"plugin": "ilp-plugin-btp", "options": options}}
    with pytest.raises(ConfigError) as info:
        load_plugin_spec(str(write_config(tmp_path / "c.json", document)), str(tmp_path))
    assert "hunter2-secret" not in str(info.value)
    assert "port" in str(info.value)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.NoRouteError("x", code="F02"), 4),
        (errors.ExchangeRateError("x"), 5),
        (errors.ReceiverRefusedError("x"), 6),
        (errors.ConnectionClosedError("x"), 6),
        (errors.PaymentTimeoutError("x"), 7),
        (errors.InsufficientLiquidityError("x", code="T04"), 8),
        (errors.RejectedError("x", code="F99"), 8),
        (errors.StreamError("x"), 1),
    ],
)
def test_each_stream_failure_has_its_exit_code(error: Exception, code: int) -> None:
    assert _exit_code_of(error) == code
    assert code in EXIT_CODES


class _Answer:
    destination_account = "test.unit.receiver.token"


@pytest.mark.parametrize("as_json", [True, False])
def test_a_timeout_reports_the_money_abandoned_in_flight(
    as_json: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    error = errors.PaymentTimeoutError("the payment did not finish within 0.5 s")
    error.with_amounts(700, 1400)
    error.amount_in_flight = 300
    code = _report_failure(Output(as_json), error, _Answer())
    captured = capsys.readouterr()
    assert code == 7
    assert captured.err.count("\n") == 1
    assert "(sent 700, delivered 1400, 300 in flight when abandoned" in captured.err
    if as_json:
        assert json.loads(captured.out) == {
            "sent": "700",
            "delivered": "1400",
            "destination": _Answer.destination_account,
            "error": "PaymentTimeoutError",
            "in_flight": "300",
        }
    else:
        assert captured.out.split() == [
            "sent=700",
            "delivered=1400",
            f"destination={_Answer.destination_account}",
            "error=PaymentTimeoutError",
            "in_flight=300",
        ]


def test_a_failure_with_nothing_in_flight_says_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code = _report_failure(Output(True), errors.ExchangeRateError("too low"), _Answer())
    captured = capsys.readouterr()
    assert code == 5
    assert json.loads(captured.out)["in_flight"] == "0"
    assert captured.err.endswith("(sent 0, delivered 0)\n")


class _Inner:
    def __init__(self) -> None:
        self.handler: Any = None

    def register_data_handler(self, handler: Any) -> None:
        self.handler = handler


def _prepare(amount: int) -> bytes:
    from datetime import UTC, datetime, timedelta

    return ilp4.encode_prepare(
        ilp4.IlpPrepare(
            amount, datetime.now(UTC) + timedelta(seconds=30), bytes(32), "test.unit.x", b""
        )
    )


async def test_packets_above_the_maximum_get_f08_with_the_amounts() -> None:
    inner = _Inner()
    seen: list[bytes] = []

    async def handler(data: bytes) -> bytes:
        seen.append(data)
        return ilp4.encode_fulfill(ilp4.IlpFulfill(bytes(32)))

    MaxPacketAmount(inner, 300).register_data_handler(handler)
    reply = ilp4.decode_reply(await inner.handler(_prepare(301)))
    assert isinstance(reply, ilp4.IlpReject)
    assert reply.code == "F08"
    assert ilp4.decode_amount_too_large_data(reply.data) == (301, 300)
    assert seen == []
    assert isinstance(ilp4.decode_reply(await inner.handler(_prepare(300))), ilp4.IlpFulfill)
    assert await inner.handler(b"junk") == ilp4.encode_fulfill(ilp4.IlpFulfill(bytes(32)))
    assert len(seen) == 2  # the handler answers what is not a Prepare itself


@pytest.mark.parametrize("link", ["btp", "v1"])
def test_demo_stream_json(link: str) -> None:
    result = run_cli(
        "demo", "--stream", "--link", link, "--amount", "20000", "--max-packet", "500", "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["ok"] is True
    assert summary["sent"] == summary["delivered"] == summary["received"] == "20000"
    assert summary["packets_received"] >= 40
    assert summary["spsp"].startswith("http://127.0.0.1:")


def test_demo_stream_table() -> None:
    result = run_cli(
        "demo", "--stream", "--link", "btp", "--amount", "5000", "--max-packet", "1000"
    )
    assert result.returncode == 0, result.stderr
    assert "STREAM payment over SPSP" in result.stdout
    assert "OK: the whole amount arrived and both ends agree" in result.stdout


def _read_all(fd: int, proc: subprocess.Popen[bytes], limit: float) -> bytes:
    out = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    return out


def test_demo_stream_on_a_terminal_ends_with_its_table() -> None:
    """On a TTY the progress bar may be drawn (when the payment takes long enough); either way
    the run ends with the summary and exit 0."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*CLI, "demo", "--stream", "--link", "btp", "--amount", "200000", "--max-packet", "100"],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=subprocess.PIPE,
    )
    os.close(follower)
    try:
        output = _read_all(leader, proc, 120.0)
        assert proc.wait(30) == 0
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert b"the whole amount arrived" in output
