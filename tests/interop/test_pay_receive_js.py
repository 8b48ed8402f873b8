"""`ilp-paychan pay` and `ilp-paychan receive` as subprocesses against ilp-protocol-stream
2.7.2-alpha.3 hosts through ilp-connector 23, SPSP both ways.

Each CLI process runs a `BtpPlugin` configured by a file (`"plugin": "ilp-plugin-btp"`) that dials
a BTP 2.0 child account of the connector and learns its address by ILDCP. `pay` queries the JS
host's SPSP endpoint (node's http) and pays it; the JS STREAM client queries `receive`'s SPSP
endpoint (aiohttp) and pays it. The path's maximum packet amount is below the amounts, so the
connector's F08 sizes the packets. Totals must agree exactly on both sides.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from testkit.cli import CLI, cli_env, pay_json_async

from .connector import ConnectorHarness, HarnessFactory
from .setups import stream_hosts

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

MAX_PACKET = 2000
WAIT = 60.0


def _config() -> dict[str, Any]:
    return {
        "address": "test.conn",
        "accounts": {
            "payer": {"type": "btp-server", "secret": "payer-secret"},
            "payee": {
                "type": "btp-server",
                "secret": "payee-secret",
                "maxPacketAmount": str(MAX_PACKET),
            },
        },
        "hosts": stream_hosts(MAX_PACKET),
    }


@pytest.fixture
async def harness(harnesses: HarnessFactory) -> ConnectorHarness:
    return await harnesses.start(_config())


def _plugin_config(tmp_path: Path, name: str, url: str) -> Path:
    path = tmp_path / f"{name}.json"
    document = {f"{name}.": {"plugin": "ilp-plugin-btp", "options": {"server": url}}}
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize("amount", [1500, 60_000])
async def test_cli_pay_to_a_js_spsp_receiver(
    harness: ConnectorHarness, tmp_path: Path, amount: int
) -> None:
    config = _plugin_config(tmp_path, "payer", harness.account_url("payer"))
    url = harness.host("srv")["spsp"]
    code, out, err = await pay_json_async(config, tmp_path, url, "--amount", str(amount), wait=WAIT)
    assert code == 0, err
    printed = json.loads(out)
    assert printed["sent"] == printed["delivered"] == str(amount)
    query = await harness.wait_event("spsp_query", host="srv")
    assert printed["destination"] == query["destination"]
    received = await harness.received("srv")
    assert received["connections"][printed["destination"]]["total"] == str(amount)
    assert not harness.events_named("stream_error")


async def test_js_client_pays_cli_receive_over_spsp(
    harness: ConnectorHarness, tmp_path: Path
) -> None:
    config = _plugin_config(tmp_path, "payee", harness.account_url("payee"))
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        "receive",
        "--plugin-config",
        str(config),
        "--data-dir",
        str(tmp_path),
        "--spsp",
        "127.0.0.1:0",
        "--json",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
    )
    assert proc.stdout is not None
    try:
        ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), WAIT))
        assert ready["event"] == "ready"
        assert ready["account"] == "test.conn.payee"
        receipt = await harness.pay("cli", 60_000, spsp=ready["spsp"])
        assert receipt["sent"] == receipt["delivered"] == "60000"
        money: list[dict[str, Any]] = []
        while not money or money[-1]["total"] != "60000":
            event = json.loads(await asyncio.wait_for(proc.stdout.readline(), WAIT))
            assert event["event"] == "money", event
            money.append(event)
        assert len(money) >= 60_000 // MAX_PACKET
        assert all(int(e["amount"]) <= MAX_PACKET for e in money)
        proc.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(proc.stdout.read(), WAIT)
        assert await asyncio.wait_for(proc.wait(), WAIT) == 0
        assert json.loads(rest.splitlines()[-1]) == {"event": "stopped", "total": "60000"}
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert not harness.events_named("stream_error")
