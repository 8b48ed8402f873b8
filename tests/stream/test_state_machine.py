"""The connection state machine without a network: packets handed from one end to the other by
hand, each decision checked (RFC 29 §4.2, §4.4, §4.5; the sender's F08/T04/F99 handling)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ilp_paychan.codec.ilp4 import (
    IlpFulfill,
    IlpPrepare,
    IlpReject,
    decode_prepare,
    encode,
    encode_amount_too_large_data,
    encode_reject,
)
from ilp_paychan.stream import (
    UINT64_MAX,
    ConnectionKeys,
    ErrorCode,
    ExchangeRateError,
    IlpPacketType,
    InsufficientLiquidityError,
    NoRouteError,
    ReceiverRefusedError,
    StreamError,
    StreamPacket,
    decrypt_packet,
    encrypt_packet,
)
from ilp_paychan.stream import frames as f
from ilp_paychan.stream.connection import Connection, ConnectionOptions, OutgoingPacket, _split

SECRET = bytes(range(32))
CLIENT = "test.alice"
SERVER = "test.bob.conn"


def pair(
    client_options: ConnectionOptions | None = None,
    server_options: ConnectionOptions | None = None,
) -> tuple[Connection, Connection]:
    client = Connection(
        plugin=None,
        shared_secret=SECRET,
        is_server=False,
        source_account=CLIENT,
        asset_code="USD",
        asset_scale=2,
        destination_account=SERVER,
        options=client_options,
    )
    server = Connection(
        plugin=None,
        shared_secret=SECRET,
        is_server=True,
        source_account=SERVER,
        asset_code="EUR",
        asset_scale=3,
        options=server_options,
    )
    return client, server


def deliver(
    server: Connection, out: OutgoingPacket, rate: Fraction = Fraction(1)
) -> IlpFulfill | IlpReject:
    prepare = decode_prepare(out.prepare)
    arrived = IlpPrepare(
        int(prepare.amount * rate),
        prepare.expires_at,
        prepare.execution_condition,
        prepare.destination,
        prepare.data,
    )
    return server.handle_prepare(arrived)


def roundtrip(client: Connection, server: Connection, rate: Fraction = Fraction(1)) -> float:
    out = client.next_packet()
    assert out is not None
    return client.handle_reply(out, encode(deliver(server, out, rate)))


def connected(
    rate: Fraction = Fraction(1),
    client_options: ConnectionOptions | None = None,
    server_options: ConnectionOptions | None = None,
) -> tuple[Connection, Connection]:
    client, server = pair(client_options, server_options)
    probe = client.probe_packet(1000)
    result = client.probe_result(probe, encode(deliver(server, probe, rate)))
    assert result.delivered == int(1000 * rate)
    client.set_rate(Fraction(result.delivered, 1000), UINT64_MAX)
    return client, server


def test_probe_is_refused_with_the_amount_that_arrived_and_the_servers_details() -> None:
    client, server = pair()
    probe = client.probe_packet(1000)
    reply = deliver(server, probe, Fraction(3, 2))
    assert isinstance(reply, IlpReject)
    assert reply.code == "F99"
    packet = decrypt_packet(reply.data, ConnectionKeys(SECRET))
    assert packet.ilp_packet_type is IlpPacketType.REJECT
    assert packet.sequence == probe.sequence
    assert packet.prepare_amount == 1500
    assert f.ConnectionAssetDetailsFrame("EUR", 3) in packet.frames
    assert f.ConnectionMaxStreamIdFrame(20) in packet.frames
    assert server.destination_account == CLIENT
    result = client.probe_result(probe, encode(reply))
    assert result.delivered == 1500
    assert client.destination_asset == ("EUR", 3)


def test_money_is_fulfilled_and_counted_on_both_ends() -> None:
    client, server = connected(Fraction(2))
    stream = client.create_stream()
    stream._send_max = 500
    assert roundtrip(client, server, Fraction(2)) == 0.0
    assert client.total_sent == 500
    assert client.total_delivered == 1000
    assert server.total_received == 1000
    (incoming,) = server.streams
    assert incoming.id == 1
    assert incoming.total_received == 1000
    assert stream.total_sent == 500
    assert stream.total_delivered == 1000


def test_shares_split_with_the_remainder_to_the_lowest_stream() -> None:
    client, server = connected()
    a, b = client.create_stream(), client.create_stream()
    a._send_max, b._send_max = 1, 2
    # Force an odd arrival: 3 sent, 3 arrive; then check the split of a packet by hand.
    roundtrip(client, server)
    assert [s.total_received for s in server.streams] == [1, 2]
    assert _split(10, [(3, 1), (1, 1), (5, 1)]) == [(3, 3), (1, 4), (5, 3)]


@given(
    amount=st.integers(0, UINT64_MAX),
    shares=st.lists(st.integers(0, 2**40), min_size=1, max_size=6),
)
@settings(max_examples=200, deadline=None)
def test_split_sums_to_the_amount(amount: int, shares: list[int]) -> None:
    parts = _split(amount, list(enumerate(shares)))
    if sum(shares):
        assert sum(p for _, p in parts) == amount
        assert all(p >= 0 for _, p in parts)


def test_too_little_arriving_is_refused_and_the_sender_stops_below_its_minimum() -> None:
    client, server = connected(Fraction(1), ConnectionOptions(min_exchange_rate=Fraction(9, 10)))
    stream = client.create_stream()
    stream._send_max = 1000
    out = client.next_packet()
    assert out is not None
    assert out.min_destination == 900
    reply = deliver(server, out, Fraction(1, 2))
    assert isinstance(reply, IlpReject)
    assert reply.code == "F99"
    assert server.total_received == 0
    with pytest.raises(ExchangeRateError) as info:
        client.handle_reply(out, encode(reply))
    assert info.value.rate == Fraction(1, 2)
    assert info.value.minimum == Fraction(9, 10)
    assert client.total_sent == 0
    assert stream._held == 0


def test_rate_below_minimum_at_probe_time_is_refused() -> None:
    client, _ = pair(ConnectionOptions(min_exchange_rate=Fraction(2)))
    with pytest.raises(ExchangeRateError, match="below the minimum 2"):
        client.set_rate(Fraction(1), UINT64_MAX)


def test_receive_max_blocks_the_sender_after_what_fits() -> None:
    client, server = connected(server_options=ConnectionOptions(receive_max=100))
    stream = client.create_stream()
    stream._send_max = 500
    # The first packet (500) exceeds the stream's 100: refused, the reply says the limit.
    roundtrip(client, server)
    assert server.total_received == 0
    assert stream._remote_receive_max == 100
    roundtrip(client, server)
    assert server.total_received == 100
    assert client.next_packet() is None  # nothing fits: no packet, the stream is blocked
    assert stream._blocked


def test_undecryptable_data_is_f06() -> None:
    _, server = pair()
    other = encrypt_packet(StreamPacket(1, IlpPacketType.PREPARE), ConnectionKeys(b"other"))
    reply = server.handle_prepare(
        IlpPrepare(0, _expiry(), bytes(32), SERVER, other),
    )
    assert isinstance(reply, IlpReject)
    assert reply.code == "F06"
    wrong_type = encrypt_packet(StreamPacket(1, IlpPacketType.FULFILL), ConnectionKeys(SECRET))
    reply = server.handle_prepare(IlpPrepare(0, _expiry(), bytes(32), SERVER, wrong_type))
    assert isinstance(reply, IlpReject)
    assert reply.code == "F06"


def _expiry():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) + timedelta(seconds=30)


def _send_frames(server: Connection, frames: tuple[f.Frame, ...], amount: int = 0) -> IlpReject:
    keys = ConnectionKeys(SECRET)
    data = encrypt_packet(StreamPacket(7, IlpPacketType.PREPARE, 0, frames), keys)
    reply = server.handle_prepare(IlpPrepare(amount, _expiry(), keys.condition(data), SERVER, data))
    assert isinstance(reply, IlpReject), reply
    return reply


def _reply_frames(reply: IlpReject) -> tuple[f.Frame, ...]:
    return decrypt_packet(reply.data, ConnectionKeys(SECRET)).frames


def test_a_client_opening_an_even_stream_violates_the_protocol() -> None:
    _, server = pair()
    reply = _send_frames(server, (f.StreamMoneyFrame(2, 1),), 10)
    closes = [x for x in _reply_frames(reply) if isinstance(x, f.ConnectionCloseFrame)]
    assert closes
    assert closes[0].code == ErrorCode.PROTOCOL_VIOLATION
    assert server.closed


def test_too_many_streams_is_a_stream_id_error() -> None:
    _, server = pair()
    reply = _send_frames(server, (f.StreamMoneyFrame(41, 1),), 10)
    closes = [x for x in _reply_frames(reply) if isinstance(x, f.ConnectionCloseFrame)]
    assert closes
    assert closes[0].code == ErrorCode.STREAM_ID_ERROR


def test_data_past_the_window_is_a_flow_control_error() -> None:
    _, server = pair(server_options=ConnectionOptions(stream_window=10))
    reply = _send_frames(server, (f.StreamDataFrame(1, 0, b"x" * 11),))
    closes = [x for x in _reply_frames(reply) if isinstance(x, f.ConnectionCloseFrame)]
    assert closes
    assert closes[0].code == ErrorCode.FLOW_CONTROL_ERROR
    assert server.closed


def test_a_closed_connection_answers_with_connection_close() -> None:
    client, server = connected()
    server._finish(None)
    stream = client.create_stream()
    stream._send_max = 5
    out = client.next_packet()
    assert out is not None
    reply = deliver(server, out)
    assert isinstance(reply, IlpReject)
    assert any(isinstance(x, f.ConnectionCloseFrame) for x in _reply_frames(reply))
    client.handle_reply(out, encode(reply))
    assert client.closed
    assert client.error is None
    with pytest.raises(ReceiverRefusedError):
        stream._raise_if_failed(5)


def _prepare_on(server: Connection, frames: tuple[f.Frame, ...], amount: int = 0) -> IlpPrepare:
    keys = ConnectionKeys(SECRET)
    data = encrypt_packet(StreamPacket(9, IlpPacketType.PREPARE, 0, frames), keys)
    return IlpPrepare(amount, _expiry(), keys.condition(data), SERVER, data)


def test_a_closed_connection_fulfils_a_late_stream_close() -> None:
    # ilp-protocol-stream sends its StreamClose after its ConnectionClose and re-sends a rejected
    # StreamClose in a loop; fulfilling it (with ConnectionClose) ends that loop.
    _, server = connected()
    server._finish(None)
    reply = server.handle_prepare(
        _prepare_on(server, (f.StreamCloseFrame(1, ErrorCode.NO_ERROR, ""),))
    )
    assert isinstance(reply, IlpFulfill)
    packet = decrypt_packet(reply.data, ConnectionKeys(SECRET))
    assert packet.ilp_packet_type is IlpPacketType.FULFILL
    assert packet.sequence == 9
    assert packet.prepare_amount == 0
    assert f.ConnectionCloseFrame(ErrorCode.NO_ERROR, "") in packet.frames
    assert server.total_received == 0


@pytest.mark.parametrize(
    ("frames", "amount"),
    [
        ((f.StreamMoneyFrame(1, 1),), 5),
        ((f.StreamCloseFrame(1, ErrorCode.NO_ERROR, ""),), 5),
        ((f.StreamDataFrame(1, 0, b"late"),), 0),
        ((f.StreamCloseFrame(1, ErrorCode.NO_ERROR, ""), f.StreamMoneyFrame(1, 1)), 0),
    ],
)
def test_a_closed_connection_still_refuses_money_and_data(
    frames: tuple[f.Frame, ...], amount: int
) -> None:
    _, server = connected()
    server._finish(None)
    reply = server.handle_prepare(_prepare_on(server, frames, amount))
    assert isinstance(reply, IlpReject)
    assert reply.code == "F99"
    assert any(isinstance(x, f.ConnectionCloseFrame) for x in _reply_frames(reply))
    assert server.total_received == 0


def test_a_closed_connection_refuses_a_late_unfulfillable_packet() -> None:
    client, server = connected()
    server._finish(None)
    out = client.close_packet(ErrorCode.NO_ERROR, "")
    reply = deliver(server, out)
    assert isinstance(reply, IlpReject)
    assert reply.code == "F99"


def test_data_is_reassembled_in_order() -> None:
    _, server = pair()
    stream = server._new_stream(1)
    stream._receive_data(5, b"world")
    assert not stream._ready
    stream._receive_data(0, b"hello")
    stream._receive_data(0, b"hello")  # a repeat changes nothing
    assert bytes(stream._ready) == b"helloworld"


def _reject(code: str, data: bytes = b"") -> bytes:
    return encode_reject(IlpReject(code, "test.connector", "", data))


def test_f08_shrinks_packets_to_the_paths_maximum() -> None:
    client, _ = connected()
    stream = client.create_stream()
    stream._send_max = 10_000
    out = client.next_packet()
    assert out is not None
    assert out.source_amount == 10_000
    assert client.handle_reply(out, _reject("F08", encode_amount_too_large_data(10_000, 1234))) == 0
    assert stream._held == 0
    out = client.next_packet()
    assert out is not None
    assert out.source_amount == 1234


def test_f08_to_zero_means_no_route() -> None:
    client, _ = connected()
    stream = client.create_stream()
    stream._send_max = 1
    out = client.next_packet()
    assert out is not None
    with pytest.raises(NoRouteError):
        client.handle_reply(out, _reject("F08"))


def test_t04_backs_off_then_fails_after_the_retries() -> None:
    options = ConnectionOptions(max_retries=3, retry_delay=0.1, max_retry_delay=0.3)
    client, _ = connected(client_options=options)
    stream = client.create_stream()
    stream._send_max = 1000
    delays = []
    for _ in range(3):
        out = client.next_packet()
        assert out is not None
        delays.append(client.handle_reply(out, _reject("T04")))
    assert delays == [0.1, 0.2, 0.3]
    out = client.next_packet()
    assert out is not None
    assert out.source_amount < 1000  # T04 lowered the packet size
    with pytest.raises(InsufficientLiquidityError) as info:
        client.handle_reply(out, _reject("T04"))
    assert info.value.code == "T04"


def test_f02_is_no_route() -> None:
    client, _ = connected()
    stream = client.create_stream()
    stream._send_max = 10
    out = client.next_packet()
    assert out is not None
    with pytest.raises(NoRouteError, match="F02"):
        client.handle_reply(out, _reject("F02"))
    assert stream._held == 0


def test_a_lost_packet_is_undone_and_retried() -> None:
    client, server = connected()
    stream = client.create_stream()
    stream._send_max = 10
    out = client.next_packet()
    assert out is not None
    assert client.handle_reply(out, None) > 0
    assert stream._held == 0
    roundtrip(client, server)
    assert server.total_received == 10
    assert client.total_sent == 10


def test_rejected_data_is_resent_with_the_same_offsets() -> None:
    client, server = connected()
    stream = client.create_stream()
    stream.write(b"abcdef")
    out = client.next_packet()
    assert out is not None
    client.handle_reply(out, _reject("T00"))
    again = client.next_packet()
    assert again is not None
    sent = [x for x in again.frames if isinstance(x, f.StreamDataFrame)]
    assert sent == [f.StreamDataFrame(1, 0, b"abcdef")]
    client.handle_reply(again, encode(deliver(server, again)))
    assert bytes(server.streams[0]._ready) == b"abcdef"


def test_a_stream_beyond_the_remotes_maximum_says_stream_id_blocked() -> None:
    client, _ = connected()
    for _ in range(10):
        client.create_stream()
    for _ in range(3):
        with pytest.raises(StreamError, match="stream ids up to 20"):
            client.create_stream()
    # RFC 29 §5.3.6: the id we wish to open, once; not a ConnectionMaxStreamId of ours.
    assert client._queued == [f.ConnectionStreamIdBlockedFrame(21)]


def _open_pay_close(server: Connection, sid: int) -> None:
    paid = server.handle_prepare(_prepare_on(server, (f.StreamMoneyFrame(sid, 1),), 1))
    assert isinstance(paid, IlpFulfill), sid
    closed = server.handle_prepare(
        _prepare_on(server, (f.StreamCloseFrame(sid, ErrorCode.NO_ERROR, ""),))
    )
    assert isinstance(closed, IlpFulfill), sid


def _refused_as_closed(server: Connection, sid: int) -> bool:
    reply = server.handle_prepare(_prepare_on(server, (f.StreamMoneyFrame(sid, 1),), 1))
    return isinstance(reply, IlpReject) and any(
        isinstance(x, f.StreamCloseFrame)
        and x.stream_id == sid
        and x.code == ErrorCode.STREAM_STATE_ERROR
        for x in _reply_frames(reply)
    )


def test_closed_stream_ids_are_remembered_in_bounded_memory() -> None:
    # A long-lived connection whose remote opens and closes streams one after another: every
    # closed id stays closed (RFC 29 §4.4.1: a stream is opened by a previously unused id), yet
    # what the connection keeps for them does not grow with their number.
    _, server = connected()
    count = 600
    for sid in range(1, 2 * count, 2):
        _open_pay_close(server, sid)
    assert server.total_received == count
    assert not server._streams
    assert len(server._remote_closed_ids) <= 1
    for sid in (1, 3, 2 * count - 3, 2 * count - 1):
        assert _refused_as_closed(server, sid)
    assert server.total_received == count
    assert not server.closed


def test_streams_opened_out_of_order_are_still_new_and_closed_ones_stay_closed() -> None:
    # Packets may arrive out of order, so a remote's stream 5 can come before its stream 3.
    _, server = connected()
    _open_pay_close(server, 5)
    _open_pay_close(server, 1)
    assert _refused_as_closed(server, 5)
    _open_pay_close(server, 3)
    for sid in (1, 3, 5):
        assert _refused_as_closed(server, sid)
    assert server._remote_closed_ids == set()
    assert server.total_received == 3


def test_a_remote_that_never_uses_an_id_cannot_grow_the_closed_set() -> None:
    _, server = connected()
    for sid in range(3, 3 + 2 * 500, 2):  # stream 1 never opened
        _open_pay_close(server, sid)
    assert len(server._remote_closed_ids) <= 64
    assert _refused_as_closed(server, 3)
    assert _refused_as_closed(server, 3 + 2 * 499)
    # Our own streams that are gone are closed too, without being remembered one by one.
    _, server = connected()
    ours = server.create_stream()
    server._retire(ours)
    assert _refused_as_closed(server, ours.id)
