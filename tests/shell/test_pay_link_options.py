"""`ilp-paychan pay --send-only --max-packet-amount N`: what each option changes on the wire.

The payer is a real subprocess with a `BtpPlugin` dialling a loopback listener; the receiver
runs in the test process (a `BtpPlugin` listener that hands out the payer's address over ILDCP,
our `StreamServer` and `SpspServer`), so the test can look at what the STREAM server learned:
whether the payer told its address (`--send-only` keeps it quiet) and how large each packet
was (`--max-packet-amount` caps them without any F08 on the path). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan.stream import Connection, StreamServer
from ilp_paychan.stream.spsp import SpspServer
from ilp_paychan.v2.plugin import BtpPlugin
from testkit.cli import pay_json_async

from .conftest import run_cli, write_config

pytestmark = pytest.mark.timeout(120)

WAIT = 60.0
SECRET = "pay-link-options-secret"
PAYER = "test.linkopts.payer"


class Receiver:
    """Our STREAM receiver behind SPSP, recording every amount that arrives."""

    def __init__(self, plugin: BtpPlugin, server: StreamServer, spsp: SpspServer) -> None:
        self.plugin = plugin
        self.server = server
        self.spsp = spsp
        self.amounts: list[int] = []
        server.on_money(self._money)

    def _money(self, connection: Connection, amount: int, total: int) -> None:
        self.amounts.append(amount)

    async def connection(self) -> Connection:
        return await asyncio.wait_for(self.server.accept(), WAIT)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    plugin = BtpPlugin(
        {
            "listener": {"port": 0, "host": "127.0.0.1", "secret": SECRET},
            "address": "test.linkopts",
            "ildcp": {"clientAddress": PAYER, "assetCode": "XRP", "assetScale": 6},
        }
    )
    await plugin.connect()
    server = StreamServer(plugin, address="test.linkopts", asset_code="XRP", asset_scale=6)
    await server.listen()
    spsp = SpspServer(server, "127.0.0.1", 0)
    await spsp.start()
    try:
        yield Receiver(plugin, server, spsp)
    finally:
        await spsp.stop()
        await server.close(timeout=2)
        await plugin.disconnect()


def _payer_config(tmp_path: Path, receiver: Receiver) -> Path:
    port = receiver.plugin.listener_port
    document = {
        "test.linkopts.": {
            "plugin": "ilp-plugin-btp",
            "options": {"server": f"btp+ws://payer:{SECRET}@127.0.0.1:{port}"},
        }
    }
    return write_config(tmp_path / "payer.json", document)


async def _pay(config: Path, tmp_path: Path, url: str, *extra: str) -> tuple[int, str, str]:
    return await pay_json_async(config, tmp_path, url, *extra, wait=WAIT)


async def test_send_only_and_max_packet_amount(tmp_path: Path, receiver: Receiver) -> None:
    config = _payer_config(tmp_path, receiver)
    code, out, err = await _pay(
        config,
        tmp_path,
        receiver.spsp.url,
        "--amount",
        "1000",
        "--send-only",
        "--max-packet-amount",
        "300",
    )
    assert code == 0, err
    printed: dict[str, Any] = json.loads(out)
    assert printed["sent"] == printed["delivered"] == "1000"
    conn = await receiver.connection()
    assert conn.total_received == 1000
    assert conn.destination_account is None  # never told the payer's address
    assert receiver.amounts == [300, 300, 300, 100]  # capped by the payer, no F08 on this path
    assert err == ""


async def test_without_the_options_the_payer_tells_its_address_and_packets_are_whole(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = _payer_config(tmp_path, receiver)
    code, out, err = await _pay(config, tmp_path, receiver.spsp.url, "--amount", "1000")
    assert code == 0, err
    assert json.loads(out)["delivered"] == "1000"
    conn = await receiver.connection()
    assert conn.destination_account is not None
    assert conn.destination_account.startswith(PAYER + ".")
    assert receiver.amounts == [1000]


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "x"])
def test_max_packet_amount_must_be_a_positive_integer(tmp_path: Path, value: str) -> None:
    config = write_config(tmp_path / "payer.json", {"server": "btp+ws://:s@127.0.0.1:1"})
    result = run_cli(
        "pay",
        "--plugin-config",
        str(config),
        "--to",
        "$example.com",
        "--amount",
        "10",
        "--max-packet-amount",
        value,
    )
    assert result.returncode == 2
    assert "--max-packet-amount" in result.stderr
    assert "positive integer" in result.stderr
