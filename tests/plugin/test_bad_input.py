"""Issue item 6: bad input gets a clear BTP error (or, for undecodable frames, no answer as the
reference and RFC 23), the connection stays usable, and the stored state is unchanged."""

from __future__ import annotations

import hashlib
import os
import uuid

import pytest

from ilp_paychan import Plugin
from ilp_paychan.codec import btp
from ilp_paychan.codec.btp import Fulfill, Message, ProtocolData, Reject
from ilp_paychan.errors import InvalidFieldsError, TransferNotFoundError

from .conftest import RawPeer, make_transfer, prepare_packet


async def totals(plugin: Plugin) -> tuple[str, str, str, str]:
    log = plugin.transfer_log
    return (
        await log.get_incoming_fulfilled(),
        await log.get_outgoing_fulfilled(),
        await log.get_incoming_fulfilled_and_prepared(),
        await log.get_outgoing_fulfilled_and_prepared(),
    )


ZERO = ("0", "0", "0", "0")


def assert_error(answer: btp.Packet, code: str, name: str, text: str = "") -> None:
    assert isinstance(answer, btp.Error), answer
    assert (answer.code, answer.name) == (code, name)
    assert text in answer.data


@pytest.mark.parametrize(
    "frame",
    [b"\x03\x00\x00", b"\x06\x00\x00\x00\x01\x05\x01", b"\x07\x00\x00\x00\x01\x02\x01\x00", b""],
    ids=["truncated-prepare", "short-message", "type-7", "empty"],
)
async def test_undecodable_frames_get_no_answer_and_the_connection_stays_usable(
    listener: Plugin, raw: RawPeer, frame: bytes
) -> None:
    await raw.send_frame(frame)
    await raw.still_usable()
    assert raw.requests.empty()
    assert await totals(listener) == ZERO


async def test_unknown_side_protocol_gets_a_clean_not_accepted_error(raw: RawPeer) -> None:
    """The reference answered F00 `TypeError`; ours is a clean NotAcceptedError."""
    answer = await raw.request(Message(0, (ProtocolData("frobnicate", 1, b"x"),)))
    assert_error(answer, "F00", "NotAcceptedError", "Unsupported side protocol(s): frobnicate")
    await raw.still_usable()


async def test_fulfill_for_an_unknown_id_is_transfer_not_found(
    listener: Plugin, raw: RawPeer
) -> None:
    answer = await raw.request(Fulfill(0, str(uuid.uuid4()), os.urandom(32)))
    assert_error(answer, TransferNotFoundError.ilp_code, "TransferNotFoundError")
    await raw.still_usable()
    assert await totals(listener) == ZERO


async def test_wrong_fulfillment_is_refused_and_the_transfer_stays_prepared(
    listener: Plugin, raw: RawPeer
) -> None:
    transfer, _ = make_transfer(listener.get_peer_account(), amount="7")
    sending = listener.send_transfer(transfer)
    import asyncio

    task = asyncio.ensure_future(sending)
    await raw.answer(await raw.next_request())
    await task
    answer = await raw.request(Fulfill(0, transfer["id"], os.urandom(32)))
    assert_error(answer, "F00", "NotAcceptedError", "Fulfillment does not match the condition")
    assert (await listener.transfer_log.get(transfer["id"]))["state"] == "prepared"
    assert await totals(listener) == ("0", "0", "0", "7")
    await raw.still_usable()


async def test_amount_over_uint64_is_refused_before_anything_is_stored(listener: Plugin) -> None:
    transfer, _ = make_transfer(listener.get_peer_account(), amount=str(2**64))
    with pytest.raises(InvalidFieldsError, match="amount"):
        await listener.send_transfer(transfer)
    assert await totals(listener) == ZERO


async def test_zero_amount_prepare_is_invalid_fields(listener: Plugin, raw: RawPeer) -> None:
    packet, _ = prepare_packet(amount=0)
    assert_error(await raw.request(packet), "F01", "InvalidFieldsError", "amount")
    assert await totals(listener) == ZERO


async def test_prepare_with_expiry_in_the_past_is_invalid_fields(
    listener: Plugin, raw: RawPeer
) -> None:
    """The reference accepted it and expired it at once; we refuse it (documented)."""
    packet, _ = prepare_packet(expires_in=-5)
    assert_error(await raw.request(packet), "F01", "InvalidFieldsError", "expiresAt")
    await raw.still_usable()
    assert await totals(listener) == ZERO
    with pytest.raises(TransferNotFoundError):
        await listener.transfer_log.get(packet.transfer_id)


async def test_prepare_with_an_unreadable_timestamp_is_invalid_fields(
    listener: Plugin, raw: RawPeer
) -> None:
    """The reference answered F00 `RangeError` for an Invalid Date."""
    packet, _ = prepare_packet()
    frame = bytearray(btp.encode(packet))
    assert packet.expires_at is not None
    moment = packet.expires_at
    text = f"{moment:%Y%m%d%H%M%S}.{moment.microsecond // 1000:03d}Z".encode()
    stamp = frame.index(text)
    frame[stamp : stamp + 4] = b"99xx"
    answer = await raw.request_frame(bytes(frame))
    assert_error(answer, "F01", "InvalidFieldsError", "expiresAt")
    await raw.still_usable()
    assert await totals(listener) == ZERO


async def test_prepare_over_the_limit_is_refused_and_stays_refused(
    listener: Plugin, raw: RawPeer
) -> None:
    """An identical re-send of a refused Prepare must not slip through uncounted."""
    packet, _ = prepare_packet(amount=1001)
    for _ in range(2):
        answer = await raw.request(packet)
        assert_error(
            answer,
            "F00",
            "NotAcceptedError",
            "balanceIncomingFulfilledAndPrepared exceeds greatest allowed value after",
        )
    assert await totals(listener) == ZERO
    with pytest.raises(TransferNotFoundError):
        await listener.transfer_log.get(packet.transfer_id)
    await raw.still_usable()


async def test_reject_without_an_ilp_error_is_refused_and_changes_nothing(
    listener: Plugin, raw: RawPeer
) -> None:
    """The reference answered F00 `TypeError`; ours is a NotAcceptedError naming the problem."""
    import asyncio

    transfer, _ = make_transfer(listener.get_peer_account(), amount="3")
    task = asyncio.ensure_future(listener.send_transfer(transfer))
    await raw.answer(await raw.next_request())
    await task
    for pd in [(), (ProtocolData("ilp", 0, b"\x01\x02"),)]:
        answer = await raw.request(Reject(0, transfer["id"], pd))
        assert_error(answer, "F00", "NotAcceptedError", "ILP error")
    assert (await listener.transfer_log.get(transfer["id"]))["state"] == "prepared"
    await raw.still_usable()


async def test_invalid_json_custom_entry_is_invalid_fields(listener: Plugin, raw: RawPeer) -> None:
    """The reference leaked a `SyntaxError` name with F00."""
    packet, _ = prepare_packet(protocol_data=(ProtocolData("custom", 2, b"{nope"),))
    assert_error(await raw.request(packet), "F01", "InvalidFieldsError", "custom")
    assert await totals(listener) == ZERO


async def test_text_frames_close_only_that_socket(listener: Plugin, raw: RawPeer) -> None:
    """The reference crashed on a text frame; the socket is closed (1003) and the
    listener keeps serving."""
    import asyncio

    await raw.send_frame("hello")
    await asyncio.wait_for(raw.ws.wait_closed(), 5)
    assert raw.ws.close_code == 1003
    assert listener.listener_port is not None
    again = await RawPeer.open(listener.listener_port)
    await again.still_usable()
    await again.close()


async def test_fulfill_for_an_incoming_transfer_is_refused(listener: Plugin, raw: RawPeer) -> None:
    packet, preimage = prepare_packet(amount=4)
    assert isinstance(await raw.request(packet), btp.Response)
    answer = await raw.request(Fulfill(0, packet.transfer_id, preimage))
    assert_error(answer, "F00", "NotAcceptedError", "is incoming")
    assert (await listener.transfer_log.get(packet.transfer_id))["state"] == "prepared"


async def test_condition_mismatch_uses_bytes_not_text(listener: Plugin, raw: RawPeer) -> None:
    """The condition is compared as bytes."""
    preimage = os.urandom(32)
    packet, _ = prepare_packet(amount=2, condition=hashlib.sha256(preimage).digest())
    assert isinstance(await raw.request(packet), btp.Response)
    import asyncio
    import base64

    text = base64.urlsafe_b64encode(preimage).decode().rstrip("=")
    task = asyncio.ensure_future(listener.fulfill_condition(packet.transfer_id.upper(), text))
    fulfill = await raw.next_request()
    assert isinstance(fulfill, Fulfill)
    assert fulfill.fulfillment == preimage
    await raw.answer(fulfill)
    await task
    assert await listener.transfer_log.list_peer_notices() == []
