"""The decoder reads at most MAX_PROTOCOL_DATA_ENTRIES protocol-data entries per packet."""

from __future__ import annotations

import pytest

from ilp_paychan.codec import btp
from ilp_paychan.codec.btp import MAX_PROTOCOL_DATA_ENTRIES, Message, ProtocolData
from ilp_paychan.codec.errors import CodecError


def _message(entries: int) -> bytes:
    pd = tuple(ProtocolData(f"p{i}", 0, b"") for i in range(entries))
    return btp.encode(Message(7, pd))


def test_the_cap_itself_decodes() -> None:
    packet = btp.decode(_message(MAX_PROTOCOL_DATA_ENTRIES))
    assert len(packet.protocol_data) == MAX_PROTOCOL_DATA_ENTRIES


def test_one_more_is_refused_naming_the_field() -> None:
    with pytest.raises(CodecError) as caught:
        btp.decode(_message(MAX_PROTOCOL_DATA_ENTRIES + 1))
    assert caught.value.field == "protocolData"
    assert f"at most {MAX_PROTOCOL_DATA_ENTRIES}" in str(caught.value)
