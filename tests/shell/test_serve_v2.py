"""`ilp-paychan serve` with v2 ledgers (`"plugin": "ilp-plugin-btp"`): a real serve subprocess,
`BtpPlugin`s of the test on the other end of real loopback sockets, `/metrics` and `/status`
scraped over HTTP, and the config errors of a v2 entry."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan.codec import ilp4
from ilp_paychan.shell.config import ConfigError, parse_settings
from ilp_paychan.v2.plugin import BtpPlugin

from .conftest import ServeProcess, free_port, metric_value, run_cli, wait_until, write_config

TOKEN = "btp-token-for-tests"
RECEIVER = "receiver-secret-for-tests"
WAIT = 30.0
V2 = "ilp_paychan_v2_packets_total"


def prepare(*, matching: bool, amount: int = 10) -> bytes:
    """A Prepare to serve's test receiver; its condition matches RECEIVER or not."""
    data = os.urandom(16)
    fulfillment = hmac.new(RECEIVER.encode(), data, hashlib.sha256).digest()
    condition = hashlib.sha256(fulfillment if matching else os.urandom(32)).digest()
    expires = datetime.now(UTC) + timedelta(seconds=20)
    return ilp4.encode_prepare(ilp4.IlpPrepare(amount, expires, condition, "test.parent.me", data))


def reply_code(reply: bytes) -> str:
    """ "fulfill", or the Reject's code."""
    packet = ilp4.decode_reply(reply)
    return "fulfill" if isinstance(packet, ilp4.IlpFulfill) else packet.code


def listener(port: int, **extra: Any) -> dict[str, Any]:
    return {"listener": {"port": port, "host": "127.0.0.1", "secret": TOKEN}, **extra}


def start_serve(tmp_path: Path, document: dict[str, Any]) -> ServeProcess:
    config = write_config(tmp_path / "serve.json", document)
    return ServeProcess(config, tmp_path / "data").start()


async def test_serve_runs_btp_listeners_counts_packets_and_stops_cleanly(tmp_path: Path) -> None:
    receiving, plain = free_port(), free_port()
    ildcp = {"addressPrefix": "test.parent", "assetCode": "XRP", "assetScale": 9}
    document = {
        "child": {
            "plugin": "ilp-plugin-btp",
            "currency": "XRP",
            "store": True,  # the durable trustline: an SQLite file under --data-dir
            "options": {
                **listener(receiving, ildcp=ildcp, balance={"maximum": "1000"}),
                "receiverSecret": RECEIVER,
            },
        },
        "plain": {"plugin": "ilp-plugin-btp", "options": listener(plain)},
    }
    serve = start_serve(tmp_path, document)
    clients: list[BtpPlugin] = []
    try:
        await asyncio.to_thread(serve.wait_ready)
        [up] = [e for e in serve.events_named("ledger_up") if e["ledger"] == "child"]
        assert up["account"] == "test.parent"
        assert up["port"] == receiving
        for port in (receiving, plain):
            client = BtpPlugin(server=f"btp+ws://me:{TOKEN}@127.0.0.1:{port}")
            await client.connect()
            clients.append(client)
        child, other = clients

        from ilp_paychan import ildcp as ildcp_client

        assert (await ildcp_client.fetch(child)).client_address == "test.parent.me"
        outcomes = await asyncio.gather(
            *(child.send_data(prepare(matching=True)) for _ in range(5)),
            *(child.send_data(prepare(matching=False)) for _ in range(2)),
            child.send_data(prepare(matching=True, amount=2000)),  # above balance.maximum
            *(other.send_data(prepare(matching=True)) for _ in range(3)),
        )
        codes = [reply_code(reply) for reply in outcomes]
        assert codes == ["fulfill"] * 5 + ["F05"] * 2 + ["T04"] + ["F02"] * 3
        with pytest.raises(Exception, match="no money handler"):
            await other.send_money("5")  # serve registers none: the Transfer is refused

        _, ctype, body = await asyncio.to_thread(serve.get, "/metrics")
        text = body.decode()
        assert ctype.startswith("text/plain")

        def packets(ledger: str, direction: str, kind: str, code: str = "") -> float | None:
            return metric_value(text, V2, ledger=ledger, direction=direction, type=kind, code=code)

        assert packets("child", "incoming", "prepare") == 8
        assert packets("child", "incoming", "fulfill") == 5
        assert packets("child", "incoming", "reject", "F05") == 2
        assert packets("child", "incoming", "reject", "T04") == 1
        assert packets("plain", "incoming", "prepare") == 3
        assert packets("plain", "incoming", "reject", "F02") == 3
        assert packets("plain", "incoming", "fulfill") == 0
        assert packets("plain", "incoming", "money") == 1
        assert packets("child", "outgoing", "prepare") == 0
        assert metric_value(text, "ilp_paychan_connected", ledger="child") == 1
        assert metric_value(text, "ilp_paychan_prepares_total", ledger="child") is None

        status = await asyncio.to_thread(serve.status)
        entry = status["ledgers"]["child"]
        assert entry["plugin"] == "ilp-plugin-btp"
        assert entry["role"] == "listener"
        assert entry["currency"] == "XRP"
        assert entry["connected"] is True
        assert entry["peer_connected"] is True
        assert entry["packets"]["incoming"] == {
            "prepare": 8,
            "fulfill": 5,
            "reject": 3,
            "money": 0,
        }
        assert entry["reject_codes"] == {"incoming": {"F05": 2, "T04": 1}, "outgoing": {}}
        assert entry["balance"] == "50"  # the peer owes us 5 x 10
        assert entry["maxBalance"] == "1000"
        assert entry["incomingPrepared"] == "0"
        assert entry["store"].startswith("sqlite:///")
        assert metric_value(text, "ilp_paychan_balance", ledger="child") == 50
        assert "balance" not in status["ledgers"]["plain"]
        assert status["ledgers"]["plain"]["reject_codes"]["incoming"] == {"F02": 3}
        assert TOKEN not in json.dumps(status)
        assert RECEIVER not in json.dumps(status)

        table = await asyncio.to_thread(
            run_cli, "status", "--admin", serve.admin_url.removeprefix("http://")
        )
        assert table.returncode == 0, table.stderr
        assert "ilp-plugin-btp" in table.stdout
        assert "prepare 8, fulfill 5, reject 3" in table.stdout

        assert await asyncio.to_thread(serve.stop, signal.SIGTERM) == 0
        for client in clients:
            await wait_for(lambda c=client: not c.is_connected(), "the client saw serve go")
        assert serve.events_named("stopped")[0]["exit_code"] == 0
        assert TOKEN not in serve.log_text()
        assert RECEIVER not in serve.log_text()
        assert (tmp_path / "data" / "child.db").is_file()
    finally:
        for client in clients:
            await client.disconnect()
        serve.kill()


async def test_serve_dials_a_btp_listener_until_it_is_there(tmp_path: Path) -> None:
    port = free_port()
    document = {
        "upstream": {
            "plugin": "ilp-plugin-btp",
            "options": {
                "server": f"btp+ws://child:{TOKEN}@127.0.0.1:{port}",
                "reconnectInterval": 100,
                "responseTimeout": 2000,
                "receiverSecret": RECEIVER,
            },
        }
    }
    serve = start_serve(tmp_path, document)
    parent = BtpPlugin(listener={"port": port, "host": "127.0.0.1", "secret": TOKEN})
    try:
        await asyncio.to_thread(
            wait_until, lambda: serve.events_named("connect_retry"), "a connect_retry line"
        )
        await parent.connect()
        await asyncio.to_thread(serve.wait_ready)
        await wait_for(parent.is_connected, "serve dialled in")
        replies = [await parent.send_data(prepare(matching=m)) for m in (True, True, False)]
        assert [reply_code(r) for r in replies] == ["fulfill", "fulfill", "F05"]
        status = await asyncio.to_thread(serve.status)
        entry = status["ledgers"]["upstream"]
        assert entry["role"] == "client"
        assert entry["server"].endswith(f"127.0.0.1:{port}")
        assert TOKEN not in entry["server"]
        assert entry["packets"]["incoming"]["fulfill"] == 2
        assert await asyncio.to_thread(serve.stop, signal.SIGTERM) == 0
        await wait_for(lambda: not parent.is_connected(), "serve's client went away")
        assert TOKEN not in serve.log_text()
    finally:
        await parent.disconnect()
        serve.kill()


async def test_a_refused_token_stops_serve_with_exit_1(tmp_path: Path) -> None:
    port = free_port()
    wrong = "not-the-token-xyz"
    document = {
        "upstream": {
            "plugin": "ilp-plugin-btp",
            "options": {"server": f"btp+ws://child:{wrong}@127.0.0.1:{port}"},
        }
    }
    parent = BtpPlugin(listener={"port": port, "host": "127.0.0.1", "secret": TOKEN})
    await parent.connect()
    serve = start_serve(tmp_path, document)
    try:
        code = await asyncio.to_thread(serve.proc.wait, WAIT)  # type: ignore[union-attr]
        assert code == 1
        [failed] = serve.events_named("start_failed")
        assert failed["ledger"] == "upstream"
        assert "NotAcceptedError" in failed["error"]
        assert wrong not in serve.log_text()
    finally:
        await parent.disconnect()
        serve.kill()


async def wait_for(condition: Any, what: str, limit: float = WAIT) -> None:
    for _ in range(int(limit / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out: {what}")


# ---------------------------------------------------------------- config


def test_a_v2_entry_becomes_a_btp_ledger(tmp_path: Path) -> None:
    document = {
        "g.eur.mytrustline.": {
            "options": {
                "listener": {"port": 0, "host": "127.0.0.1"},
                "incomingSecret": "v1-secret",
                "maxBalance": "1000",
                "info": {"prefix": "g.eur.mytrustline."},
            }
        },
        "btp": {"plugin": "ilp-plugin-btp", "options": listener(0)},
        "flat-store": {"plugin": "ilp-plugin-btp", "options": listener(0), "store": False},
    }
    settings = parse_settings(document, tmp_path)
    kinds = {ledger.name: ledger.kind for ledger in settings.ledgers}
    assert kinds == {"g.eur.mytrustline.": "v1", "btp": "btp", "flat-store": "btp"}
    btp = settings.ledgers[1]
    assert btp.options == listener(0)
    assert "prefix" not in btp.options
    assert btp.describe()["plugin"] == "ilp-plugin-btp"
    flat = parse_settings({"plugin": "ilp-plugin-btp", **listener(0)}, tmp_path)
    assert flat.ledgers[0].kind == "btp"
    assert flat.ledgers[0].name == "(options)"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            {"options": {"listner": {"port": 1}}},
            "ledger \"x\": options: unknown option 'listner' (did you mean 'listener'?)",
        ),
        (
            {"options": {"listener": {"port": 1, "host": "127.0.0.1"}}},
            'ledger "x": options: invalid "listener.secret": required, a non-empty string',
        ),
        (
            {"options": {**listener(1), "reconnectInterval": -5}},
            'ledger "x": options: invalid "reconnectInterval": expected milliseconds',
        ),
        (
            {"options": {**listener(1), "server": "btp+ws://a:b@127.0.0.1:2"}},
            'ledger "x": options: invalid options: give exactly one of "server"',
        ),
        ({"options": listener(1), "stroe": True}, 'ledger "x": stroe: unknown field (did you'),
        (
            {"options": {**listener(1), "store": True}, "store": True},
            'ledger "x": options.store: give the store in the ledger entry or in its options',
        ),
        (
            {"options": {**listener(1), "receiverSecret": ""}},
            'ledger "x": options.receiverSecret: expected a non-empty string',
        ),
        ({"options": "listener"}, 'ledger "x": options: expected an object'),
        (
            {"options": {**listener(1), "balance": {"maximum": "lots"}}},
            'ledger "x": options: invalid "balance.maximum": expected a decimal string',
        ),
    ],
)
def test_v2_config_errors_name_ledger_and_field(
    tmp_path: Path, entry: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({"x": {"plugin": "ilp-plugin-btp", **entry}}, tmp_path)
    message = str(info.value)
    assert message.startswith(expected), message
    assert "\n" not in message


@pytest.mark.parametrize(
    "options",
    [
        # a secret pasted into a field whose error quotes the value
        {**listener(1), "address": "wrong-secret-in-address!"},
        {
            "server": "btp+ws://127.0.0.1:2",
            "btpToken": "wrong-secret-in-address!",
            "address": "wrong-secret-in-address!",
        },
        {
            "server": "btp+ws://u:wrong-secret-in-address!@127.0.0.1:2",
            "address": "wrong-secret-in-address!",
        },
    ],
)
def test_v2_config_errors_never_show_a_secret(tmp_path: Path, options: dict[str, Any]) -> None:
    if "listener" in options:
        options = {**options, "listener": {**options["listener"], "secret": options["address"]}}
    with pytest.raises(ConfigError) as info:
        parse_settings({"x": {"plugin": "ilp-plugin-btp", "options": options}}, tmp_path)
    assert "wrong-secret-in-address!" not in str(info.value)
    assert 'invalid "address"' in str(info.value)


def test_serve_exits_2_with_one_line_for_a_bad_v2_entry(tmp_path: Path) -> None:
    document = {"x": {"plugin": "ilp-plugin-btp", "options": {**listener(1), "bogus": 1}}}
    config = write_config(tmp_path / "c.json", document)
    result = run_cli("serve", "--config", str(config), "--admin", "none")
    assert result.returncode == 2
    assert result.stderr.startswith(
        "ilp-paychan serve: ledger \"x\": options: unknown option 'bogus'"
    )
    assert result.stderr.count("\n") == 1
    assert TOKEN not in result.stderr
