"""Resource bounds of `BtpPlugin`: many requests in flight when the peer goes away leave no task
and no future behind, and nothing held in the trustline."""

from __future__ import annotations

import asyncio
import os

from ilp_paychan.codec import ilp4

from .conftest import Pair, eventually, fulfill, prepare
from .trustline_helpers import balance_of, trustline_of

IN_FLIGHT = 300


async def test_many_in_flight_then_the_peer_leaves_no_task_is_left(pair: Pair) -> None:
    before = asyncio.all_tasks()
    await pair.start({"balance": {"maximum": "1000000"}})
    gate = asyncio.Event()
    started = 0

    async def stuck(data: bytes) -> bytes:
        nonlocal started
        started += 1
        await gate.wait()
        return fulfill()

    pair.server.register_data_handler(stuck)
    calls = [
        asyncio.create_task(pair.client.send_data(prepare(5, data=os.urandom(8))))
        for _ in range(IN_FLIGHT)
    ]
    await eventually(lambda: started == IN_FLIGHT, "every Prepare reaches the handler")
    await pair.client.disconnect()
    replies = await asyncio.gather(*calls)
    assert {ilp4.decode_reject(r).code for r in replies} == {"T01"}
    # The listener cancels the handlers after its grace period and releases their holds.
    server = trustline_of(pair.server)
    for _ in range(500):
        if not server._handling and (await balance_of(pair.server))["incomingPrepared"] == "0":
            break
        await asyncio.sleep(0.02)
    assert (await balance_of(pair.server))["incomingPrepared"] == "0"
    await pair.server.disconnect()
    for _ in range(100):
        left = asyncio.all_tasks() - before - {asyncio.current_task()}
        if not left:
            break
        await asyncio.sleep(0.02)
    assert not left, sorted(repr(t) for t in left)[:5]
    assert not gate.is_set()
