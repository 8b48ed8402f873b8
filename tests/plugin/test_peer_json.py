"""JSON from the peer that Python reads in its own way, found by the fuzzer (each made the listener
answer "internal error" and log a traceback):

- nested deeper than the parser allows: refused like any other bad JSON, never RecursionError;
- a lone surrogate escape (``"\\ud800"``, valid JSON text): written back as that escape, as
  JSON.stringify does, not refused by strict UTF-8; stored the same way by SQLite (the ledger's
  own test of every store: tests/ledger/test_odd_json.py).
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ilp_paychan import Plugin
from ilp_paychan.codec import btp
from ilp_paychan.codec.btp import Message, ProtocolData
from ilp_paychan.codec.ilp import IlpError
from ilp_paychan.errors import InvalidFieldsError, PeerError
from ilp_paychan.plugin.protocol_data import (
    decode_entry,
    dump_json,
    entries_by_name,
    from_protocol_data,
    lpi_fields,
    to_protocol_data,
)
from ilp_paychan.plugin.reasons import outgoing_reason
from ilp_paychan.plugin.rpc import decode_value

from .conftest import RawPeer, prepare_packet, server_options

DEEP = b"[" * 5000 + b"]" * 5000
DEEP_OBJECT = b'{"a":' * 5000 + b"1" + b"}" * 5000


@pytest.mark.parametrize("data", [DEEP, DEEP_OBJECT], ids=["array", "object"])
def test_decode_entry_refuses_deep_json_naming_the_entry(data: bytes) -> None:
    with pytest.raises(InvalidFieldsError, match="invalid custom: JSON nested too deeply"):
        decode_entry(ProtocolData("custom", 2, data))


def test_rpc_decode_value_refuses_deep_json() -> None:
    with pytest.raises(InvalidFieldsError, match="invalid JSON data"):
        decode_value(ProtocolData("paychan_rpc", 2, DEEP))


def test_dump_json_refuses_a_structure_too_deep_to_write() -> None:
    value: list[object] = []
    for _ in range(5000):
        value = [value]
    with pytest.raises(InvalidFieldsError, match="not JSON-serialisable"):
        dump_json(value)


def test_peer_error_with_deep_json_data_keeps_the_text_as_message() -> None:
    text = DEEP.decode()
    error = PeerError.from_btp_error(
        code="F00", name="NotAcceptedError", data=text, triggered_at=None
    )
    assert str(error) == text


def test_outgoing_reason_keeps_deep_json_as_text() -> None:
    error = IlpError("F00", "Bad Request", "g.x", (), datetime.now(UTC), DEEP)
    assert outgoing_reason(error)["additional_info"] == DEEP.decode()


async def test_listener_answers_deep_custom_json_with_invalid_fields(raw: RawPeer) -> None:
    answer = await raw.request(Message(0, (ProtocolData("custom", 2, DEEP),)))
    assert isinstance(answer, btp.Error), answer
    assert (answer.code, answer.name) == ("F01", "InvalidFieldsError")
    assert "invalid custom: JSON nested too deeply" in answer.data
    await raw.still_usable()


LONE_SURROGATE = b'{"a":"x\\ud800y","b":"\xc3\xa9"}'


def test_lone_surrogate_json_round_trips_as_its_escape() -> None:
    value = decode_entry(ProtocolData("custom", 2, LONE_SURROGATE))
    assert value == {"a": "x\ud800y", "b": "\u00e9"}
    assert dump_json(value) == LONE_SURROGATE
    (entry,) = to_protocol_data(custom=value)
    assert decode_entry(entry) == value


async def test_request_handler_echoing_a_lone_surrogate_is_answered(
    listener: Plugin, raw: RawPeer
) -> None:
    listener.register_request_handler(lambda m: {"to": m["from"], "custom": m["custom"]})
    answer = await raw.request(Message(0, (ProtocolData("custom", 2, LONE_SURROGATE),)))
    assert isinstance(answer, btp.Response), answer
    assert answer.protocol_data == (ProtocolData("custom", 2, LONE_SURROGATE),)


json_like = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda depth: b"[" * depth + b"]" * depth, st.integers(0, 3000)),
    st.text(max_size=40).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
        max_leaves=8,
    ).map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.builds(
            ProtocolData,
            st.sampled_from(("ilp", "custom", "info", "x", "")),
            st.sampled_from((0, 1, 2, 3, 255)),
            json_like,
        ),
        max_size=4,
    )
)
def test_protocol_data_decoders_raise_only_invalid_fields(entries: list[ProtocolData]) -> None:
    """The plugin's readers of peer side-protocol data refuse bad data only with
    InvalidFieldsError (tests/fuzzkit runs the same readers on mutated frames, long)."""
    for entry in entries:
        with contextlib.suppress(InvalidFieldsError):
            decode_entry(entry)
        with contextlib.suppress(InvalidFieldsError):
            decode_value(entry)
    with contextlib.suppress(InvalidFieldsError):
        from_protocol_data(entries)
    with contextlib.suppress(InvalidFieldsError):
        fields = lpi_fields(entries_by_name(entries))
        if "custom" in fields:
            dump_json(fields["custom"])


async def test_sqlite_listener_stores_a_prepare_whose_custom_has_a_lone_surrogate(
    tmp_path: Path,
) -> None:
    plugin = Plugin(server_options(store=f"sqlite:///{tmp_path / 'ledger.db'}"))
    await plugin.connect()
    assert plugin.listener_port is not None
    raw = await RawPeer.open(plugin.listener_port)
    try:
        packet, _ = prepare_packet(protocol_data=(ProtocolData("custom", 2, LONE_SURROGATE),))
        answer = await raw.request(packet)
        assert isinstance(answer, btp.Response), answer
        stored = await plugin.transfer_log.get(packet.transfer_id)
        assert stored["transfer"]["custom"] == {"a": "x\ud800y", "b": "\u00e9"}
    finally:
        await raw.close()
        await plugin.disconnect()
