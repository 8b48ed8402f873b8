"""Settled transfers are forgotten `settledRetention` seconds after their expiry (bounded memory).

In-memory logs (`memory:`, stateless) prune by default; durable stores only when the option is
given. A re-sent Prepare of a forgotten transfer is refused as expired before the ledger sees it,
so forgetting never counts a transfer twice.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan import Plugin
from ilp_paychan.codec import btp
from ilp_paychan.errors import InvalidFieldsError, TransferNotFoundError
from ilp_paychan.plugin import retention
from ilp_paychan.plugin.options import DEFAULT_SETTLED_RETENTION

from .conftest import (
    RawPeer,
    Recorder,
    b64url,
    client_options,
    prepare_packet,
    server_options,
    wait_until,
)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, DEFAULT_SETTLED_RETENTION),
        ({"store": "memory"}, DEFAULT_SETTLED_RETENTION),
        ({"store": "sqlite:///unused.db"}, None),
        ({"store": "sqlite:///unused.db", "settledRetention": 30}, 30.0),
        ({"settledRetention": 0}, 0.0),
    ],
)
def test_retention_applies_to_in_memory_logs_unless_given(
    overrides: dict[str, Any], expected: float | None
) -> None:
    assert Plugin(server_options(**overrides)).settings.settled_retention == expected


def test_a_stateless_client_prunes_and_the_keyword_spelling_works() -> None:
    assert Plugin(client_options(1)).settings.settled_retention == DEFAULT_SETTLED_RETENTION
    plugin = Plugin(client_options(1), settled_retention=5)
    assert plugin.settings.settled_retention == 5.0


@pytest.mark.parametrize("bad", [-1, "600", True, float("nan"), float("inf")])
def test_bad_retention_is_refused_naming_the_option(bad: Any) -> None:
    with pytest.raises(InvalidFieldsError, match="settledRetention"):
        Plugin(server_options(settledRetention=bad))


async def _forgotten(plugin: Plugin, transfer_id: str) -> bool:
    try:
        await plugin.transfer_log.get(transfer_id)
    except TransferNotFoundError:
        return True
    return False


@pytest.mark.parametrize("store", ["memory:", "sqlite"])
async def test_expired_settled_transfers_are_forgotten_and_a_resend_is_refused(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "PRUNE_INTERVAL", 0.05)
    url = store if store == "memory:" else f"sqlite:///{tmp_path}/plugin.db"
    plugin = Plugin(server_options(store=url, settledRetention=0))
    events = Recorder(plugin, "incoming_prepare")
    await plugin.connect()
    try:
        assert plugin.listener_port is not None
        peer = await RawPeer.open(plugin.listener_port)
        paid, preimage = prepare_packet(amount=6, expires_in=0.5)
        refused, _ = prepare_packet(amount=4, expires_in=0.5)
        pending, _ = prepare_packet(amount=1, expires_in=30)
        for packet in (paid, refused, pending):
            assert isinstance(await peer.request(packet), btp.Response)
        fulfilling = asyncio.ensure_future(
            plugin.fulfill_condition(paid.transfer_id, b64url(preimage))
        )
        await peer.answer(await peer.next_request())
        await fulfilling
        rejecting = asyncio.ensure_future(plugin.reject_incoming_transfer(refused.transfer_id))
        await peer.answer(await peer.next_request())
        await rejecting
        log = plugin.transfer_log

        async def sums() -> tuple[str, str]:
            return (
                await log.get_incoming_fulfilled(),
                await log.get_incoming_fulfilled_and_prepared(),
            )

        assert await sums() == ("6", "7")

        await wait_until(lambda: _forgotten(plugin, paid.transfer_id), "the fulfilled one pruned")
        await wait_until(lambda: _forgotten(plugin, refused.transfer_id), "the rejected one")
        assert (await log.get(pending.transfer_id))["state"] == "prepared"
        assert await sums() == ("6", "7")

        for packet in (paid, refused):  # the peer re-sends: refused before the ledger
            answer = await peer.request(packet)
            assert isinstance(answer, btp.Error)
            assert answer.code == "F01"
            assert "expiresAt" in answer.data
            assert await _forgotten(plugin, packet.transfer_id)
        assert await sums() == ("6", "7")
        assert len(events["incoming_prepare"]) == 3
        await peer.close()
    finally:
        await plugin.disconnect()
