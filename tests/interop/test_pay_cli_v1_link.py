"""`ilp-paychan pay --send-only --max-packet-amount N` over the LPI v1 link of ilp-connector 23.

The CLI runs as a subprocess with this package's v1 trustline plugin (behind `V1Adapter`) dialling
an `lpi1-server` account of the connector (ilp-plugin-payment-channel-framework 1.3.5 inside it,
wrapped by its ilp-compat-plugin 2.0.3), and pays an ilp-protocol-stream 2.7.2-alpha.3 server on
an account of its own, over that host's SPSP endpoint. That link carries no zero-amount Prepare
to us (the framework refuses a transfer of 0) and no F08 back (ilp-compat-plugin's name table
lacks it), so the payer must not tell the receiver its address (`--send-only`) and must know the
path's maximum (`--max-packet-amount`); tests/interop/test_stream_v1_link.py shows both faults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from testkit.cli import pay_json_async

from .connector import HarnessFactory
from .setups import lpi1_account

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

MAX_PACKET = 2000
WAIT = 120.0


def _config() -> dict[str, Any]:
    return {
        "address": "test.conn",
        "accounts": {"v1": lpi1_account(str(10**12), MAX_PACKET)},
        "hosts": {"srv": {"kind": "stream-server", "quiet": True}},
    }


@pytest.mark.parametrize("amount", [1500, 60_000])
async def test_cli_pays_a_js_server_over_the_v1_link(
    harnesses: HarnessFactory, tmp_path: Path, amount: int
) -> None:
    harness = await harnesses.start(_config())
    config = tmp_path / "payer.json"
    config.write_text(json.dumps({"server": harness.account_url("v1")}))
    code, out, err = await pay_json_async(
        config,
        tmp_path,
        harness.host("srv")["spsp"],
        "--amount",
        str(amount),
        "--send-only",
        "--max-packet-amount",
        str(MAX_PACKET),
        wait=WAIT,
    )
    assert code == 0, err
    printed = json.loads(out)
    assert printed["sent"] == printed["delivered"] == str(amount)
    received = await harness.received("srv")
    assert received["connections"][printed["destination"]]["total"] == str(amount)
    assert not harness.events_named("stream_error")
    assert not harness.events_named("unhandled_rejection")
