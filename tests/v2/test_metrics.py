"""The shell's metrics count a v2 plugin's packets by direction, type and reject code."""

from __future__ import annotations

from ilp_paychan.shell.metrics import Metrics

from .conftest import Pair, fulfill, prepare


async def test_v2_packets_are_counted_by_type_and_code(pair: Pair) -> None:
    await pair.start()
    metrics = Metrics()
    metrics.attach("v2", pair.client)
    await pair.client.send_data(prepare())  # no handler on the server: F02

    async def fulfil(_: bytes) -> bytes:
        return fulfill()

    pair.server.register_data_handler(fulfil)
    await pair.client.send_data(prepare())
    await pair.client.send_data(prepare())

    def sample(direction: str, kind: str, code: str = "") -> float | None:
        labels = {"ledger": "v2", "direction": direction, "type": kind, "code": code}
        return metrics.sample("ilp_paychan_v2_packets_total", labels)

    assert sample("outgoing", "prepare") == 3
    assert sample("outgoing", "fulfill") == 2
    assert sample("outgoing", "reject", "F02") == 1
    assert b"ilp_paychan_v2_packets_total" in metrics.exposition()
