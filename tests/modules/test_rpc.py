"""CustomRpc: the module's calls over BTP side protocols, in the reference's wire format."""

from __future__ import annotations

import json

import pytest

from ilp_paychan.codec.btp import ContentType, Message, ProtocolData, Response
from ilp_paychan.errors import InvalidFieldsError, NotAcceptedError
from ilp_paychan.plugin.rpc import CustomRpc, decode_value, encode_value


def json_entry(name: str, value: object) -> ProtocolData:
    return ProtocolData(name, ContentType.APPLICATION_JSON, json.dumps(value).encode())


class Recorder:
    def __init__(self, *answer: ProtocolData) -> None:
        self.sent: list[Message] = []
        self.answer = answer

    async def __call__(self, message: Message) -> Response:
        self.sent.append(message)
        return Response(message.request_id, self.answer)


async def test_call_sends_one_json_entry_named_after_the_method() -> None:
    send = Recorder(json_entry("echo", {"back": 1}))
    rpc = CustomRpc(send)
    assert await rpc.call("echo", "ignored.prefix.", {"hello": [1, 2]}) == {"back": 1}
    (message,) = send.sent
    assert message.protocol_data == (
        ProtocolData("echo", ContentType.APPLICATION_JSON, b'{"hello":[1,2]}'),
    )


async def test_call_without_an_answer_entry_gives_an_empty_object() -> None:
    rpc = CustomRpc(Recorder(json_entry("other", 1)))
    assert await rpc.call("echo", "p.", None) == {}


async def test_call_with_two_answer_entries_is_ambiguous() -> None:
    rpc = CustomRpc(Recorder(json_entry("echo", 1), json_entry("echo", 2)))
    with pytest.raises(NotAcceptedError, match="ambiguous"):
        await rpc.call("echo", "p.", None)


async def test_call_decodes_the_answer_as_json_whatever_its_content_type() -> None:
    rpc = CustomRpc(Recorder(ProtocolData("echo", ContentType.TEXT_PLAIN_UTF8, b'"text"')))
    assert await rpc.call("echo", "p.", None) == "text"


@pytest.mark.parametrize("name", ["ilp", "info", "balance", "limit", "custom", "", "é"])
async def test_call_refuses_names_the_plugin_answers_itself(name: str) -> None:
    rpc = CustomRpc(Recorder())
    with pytest.raises(InvalidFieldsError):
        await rpc.call(name, "p.", None)
    with pytest.raises(InvalidFieldsError):
        rpc.add_method(name, lambda value: value)


async def test_call_refuses_arguments_that_are_not_json() -> None:
    send = Recorder()
    with pytest.raises(InvalidFieldsError, match="not JSON"):
        await CustomRpc(send).call("echo", "p.", {1, 2})
    assert send.sent == []


async def test_handle_answers_each_method_with_its_json_result() -> None:
    rpc = CustomRpc()

    async def add(value: list[int]) -> int:
        return sum(value)

    rpc.add_method("sum", add)
    rpc.add_method("echo-protocol", lambda value: value + " back")
    response = await rpc.handle(
        Message(7, (json_entry("echo-protocol", "hello there"), json_entry("sum", [1, 2])))
    )
    assert response == Response(
        7,
        (
            ProtocolData("echo-protocol", ContentType.APPLICATION_JSON, b'"hello there back"'),
            ProtocolData("sum", ContentType.APPLICATION_JSON, b"3"),
        ),
    )


async def test_handle_answers_null_for_a_method_returning_none() -> None:
    rpc = CustomRpc()
    rpc.add_method("noop", lambda value: None)
    response = await rpc.handle(Message(1, (json_entry("noop", 1),)))
    assert response.protocol_data[0].data == b"null"


async def test_handle_refuses_an_unknown_method_before_running_any() -> None:
    calls: list[object] = []
    rpc = CustomRpc()
    rpc.add_method("known", calls.append)
    with pytest.raises(NotAcceptedError, match="Unrecognized side protocol: unknown"):
        await rpc.handle(Message(1, (json_entry("known", 1), json_entry("unknown", 2))))
    assert calls == []


async def test_handle_uses_the_last_entry_of_a_repeated_name() -> None:
    rpc = CustomRpc()
    rpc.add_method("echo", lambda value: value)
    response = await rpc.handle(Message(1, (json_entry("echo", 1), json_entry("echo", 2))))
    assert [pd.data for pd in response.protocol_data] == [b"2"]


async def test_handle_of_an_empty_message_is_an_empty_response() -> None:
    assert await CustomRpc().handle(Message(3, ())) == Response(3, ())


async def test_handle_refuses_invalid_json_naming_the_protocol() -> None:
    rpc = CustomRpc()
    rpc.add_method("echo", lambda value: value)
    bad = ProtocolData("echo", ContentType.APPLICATION_JSON, b"{nope")
    with pytest.raises(InvalidFieldsError, match="'echo'"):
        await rpc.handle(Message(1, (bad,)))


def test_values_round_trip_as_the_reference_ships_them() -> None:
    for value in (b"\x00raw", "text", {"a": [1, "2"]}, None, 5):
        assert decode_value(encode_value("claim", value)) == value
    assert encode_value("claim", "t").content_type == ContentType.TEXT_PLAIN_UTF8
    assert encode_value("claim", b"t").content_type == ContentType.OCTET_STREAM
    assert encode_value("claim", {}).content_type == ContentType.APPLICATION_JSON
