"""Races of the trustline's agreement, over real loopback links and real SQLite files shared the
way several processes share one store key: a status question answered by a process that is not
the one answering the Prepare, and a Fulfill that arrives after another process released the
Prepare. Neither may double count or pay for nothing."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from ilp_paychan.codec import ilp4
from ilp_paychan.codec.btp import ContentType, ProtocolData
from ilp_paychan.ledger import open_backend
from ilp_paychan.v2.trustline import SIDE_PROTOCOL

from .conftest import SECRET, Pair, eventually, fulfill, prepare
from .trustline_helpers import balance_of, trustline_of


def _blocking_fulfiller(gate: asyncio.Event) -> object:
    async def handler(data: bytes) -> bytes:
        await gate.wait()
        return fulfill()

    return handler


async def test_status_asked_of_another_process_on_the_key_does_not_cancel_it(
    pair: Pair, tmp_path: Path
) -> None:
    shared = f"sqlite:///{tmp_path / 'listeners.db'}"
    limits = {"balance": {"maximum": "1000"}, "store": shared, "storeKey": "peer"}
    await pair.start(limits)
    a = pair.server
    gate = asyncio.Event()
    a.register_data_handler(_blocking_fulfiller(gate))  # type: ignore[arg-type]
    # a second listener process on the same store key, with its own client
    b = pair.make({"listener": {"port": 0, "host": "127.0.0.1", "secret": SECRET}, **limits})
    await b.connect()
    asker = pair.make({"server": f"btp+ws://:{SECRET}@127.0.0.1:{b.listener_port}"})
    await asker.connect()

    packet = prepare(60, seconds=30, data=os.urandom(8))
    call = asyncio.create_task(pair.client.send_data(packet))
    await eventually(lambda: bool(trustline_of(a)._handling), "A answers the Prepare")
    (key,) = trustline_of(a)._handling
    expires = json.dumps(
        {"op": "status", "id": key, "amount": "60", "expiresAt": "2099-01-01T00:00:00.000Z"}
    )
    answer = await asker.request_side_protocol(
        ProtocolData(SIDE_PROTOCOL, ContentType.APPLICATION_JSON, expires.encode())
    )
    assert answer is not None
    assert json.loads(answer) == {"state": "pending"}
    gate.set()
    reply = await call
    assert reply[0] == ilp4.TYPE_FULFILL, ilp4.decode_reply(reply)
    assert (await balance_of(a))["balance"] == "60"
    assert (await balance_of(b))["balance"] == "60"


async def test_a_fulfill_after_another_process_released_the_prepare_is_not_returned(
    pair: Pair, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'client.db'}"
    await pair.start(
        {"balance": {"maximum": "1000"}},
        {"balance": {"maximum": "1000", "minimum": "-1000"}, "store": store},
    )
    gate = asyncio.Event()
    pair.server.register_data_handler(_blocking_fulfiller(gate))  # type: ignore[arg-type]
    client = trustline_of(pair.client)
    call = asyncio.create_task(pair.client.send_data(prepare(70, seconds=30)))
    await eventually(lambda: bool(client._sending), "the Prepare is in flight")
    (key,) = client._sending
    # Another process on the same store key releases it (its expiry timer, say) meanwhile.
    other = await open_backend(store)
    try:
        assert await other.get_transfer_log("").cancel(key)
    finally:
        await other.close()
    gate.set()
    reply = await call
    decoded = ilp4.decode_reply(reply)
    assert isinstance(decoded, ilp4.IlpReject), "a Fulfill the balance did not count"
    assert decoded.code == "R00"
    balance = await balance_of(pair.client)
    assert balance["balance"] == "0"
    assert balance["outgoingPrepared"] == "0"
