"""`ilp-paychan serve` with the example configs against the JavaScript reference (1.3.5).

The reference README's two roles: our served server with the reference as its stateless client,
and the reference as listener with our served client. The served ledger has a `receiverSecret`, so
it fulfils what the reference sends it.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan.codec.condition import b64url_encode

from .conftest import free_port, load_example, only_ledger, write_config
from .test_serve import RECEIVER, receiver_condition, scrape, server_config

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def js_reference() -> None:
    from interop.jspeer import ensure_node_modules
    from interop.nodeproc import require_node

    require_node()

    ensure_node_modules()


def js_transfer(to: str, amount: int) -> dict[str, Any]:
    ilp = os.urandom(24)  # 24 bytes: base64 and base64url agree on the length, no padding
    return {
        "id": str(uuid.uuid4()),
        "to": to,
        "amount": str(amount),
        "executionCondition": receiver_condition(ilp),
        "expiresAt": (datetime.now(UTC) + timedelta(seconds=20)).isoformat(),
        "ilp": b64url_encode(ilp),
    }


@pytest.mark.usefixtures("js_reference")
async def test_served_server_example_pays_out_to_the_js_reference_client(
    tmp_path: Path, serve_factory: Any
) -> None:
    from interop.jspeer import JsPeer

    config, port = server_config(tmp_path)
    serve = serve_factory(config, tmp_path / "data")
    await asyncio.to_thread(serve.wait_ready)
    # the reference README's client: no store, credentials in the URL with an empty username
    options = {"server": f"btp+ws://:shared_secret@127.0.0.1:{port}"}
    async with await JsPeer.start({"options": options, "stateful": False}) as js:
        await js.call("connect")
        to = await js.call("getPeerAccount")
        transfers = [js_transfer(to, 5 + i) for i in range(5)]
        for transfer in transfers:
            await js.call("sendTransfer", transfer)
        for transfer in transfers:
            await js.wait_event("outgoing_fulfill", lambda a, t=transfer: a[0]["id"] == t["id"])
        assert await js.call("getBalance") == str(-sum(5 + i for i in range(5)))
        status, _, _ = await scrape(serve)
        assert status["ledgers"]["g.eur.mytrustline."]["balance"] == str(
            sum(5 + i for i in range(5))
        )
        await js.call("disconnect")
    assert await asyncio.to_thread(serve.stop) == 0


@pytest.mark.usefixtures("js_reference")
async def test_served_client_example_receives_from_the_js_reference_server(
    tmp_path: Path, serve_factory: Any
) -> None:
    from interop.jspeer import JsPeer

    prefix, entry = only_ledger(load_example("client.json"))
    server_options = {
        "listener": {"port": free_port()},
        "incomingSecret": "shared_secret",
        "maxBalance": "1000000000",
        "minBalance": "-1000",
        "prefix": prefix,
        "info": {
            "currencyScale": 9,
            "currencyCode": "EUR",
            "prefix": prefix,
            "connectors": [prefix + "server"],
        },
    }
    async with await JsPeer.start({"options": server_options, "stateful": True}) as js:
        entry["options"]["server"] = f"btp+ws://:shared_secret@127.0.0.1:{js.port}"
        entry["options"]["receiverSecret"] = RECEIVER
        config = write_config(tmp_path / "client.json", {prefix: entry})
        serve = serve_factory(config, tmp_path / "data")
        await asyncio.to_thread(serve.wait_ready)
        await js.call("connect")
        to = await js.call("getPeerAccount")
        transfer = js_transfer(to, 250)
        await js.call("sendTransfer", transfer)
        await js.wait_event("outgoing_fulfill", lambda a: a[0]["id"] == transfer["id"])
        assert await js.call("getBalance") == "-250"
        status, _, _ = await scrape(serve)
        ledger = status["ledgers"][prefix]
        assert ledger["peer_connected"] is True
        assert ledger["balance"] == "250"
        assert json.dumps(status).count("shared_secret") == 0
        assert await asyncio.to_thread(serve.stop) == 0
