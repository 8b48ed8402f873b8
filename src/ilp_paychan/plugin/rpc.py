"""CustomRpc: a settlement module's calls to its peer over BTP side protocols.

A call is a BTP Message with one side-protocol entry named after the method, JSON data; the peer
answers with an entry of the same name. This is the wire format of the JavaScript reference, so a
Python module and a JavaScript module can call each other. This module never touches a socket: it
is handed a `send` coroutine that delivers a Message and returns the peer's Response.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ilp_paychan.codec.btp import ContentType, Message, ProtocolData, Response
from ilp_paychan.errors import InvalidFieldsError, NotAcceptedError

_log = logging.getLogger(__name__)

#: Sends one Message to the peer and returns its Response (raises PeerError / PeerTimeoutError).
MessageSender = Callable[[Message], Awaitable[Response]]
#: A method answering the peer: called with the decoded argument, returns a JSON-able answer.
RpcHandler = Callable[[Any], Any]

#: Side protocols the plugin itself answers; a module method of these names would never be reached.
RESERVED_NAMES = frozenset({"ilp", "info", "balance", "limit", "custom"})


class CustomRpc:
    """`ctx.rpc`: call the peer's module methods, and answer the peer's calls to ours."""

    __slots__ = ("_methods", "_send")

    def __init__(self, send: MessageSender | None = None) -> None:
        self._send = send
        self._methods: dict[str, RpcHandler] = {}

    def bind(self, send: MessageSender) -> None:
        """Attach the sender once the plugin that owns the link exists."""
        self._send = send

    async def call(self, method: str, prefix: str | None = None, args: Any = None) -> Any:
        """Send `args` as JSON under side protocol `method`; return the peer's decoded answer.

        `prefix` is ignored (the reference keeps it for backwards compatibility). As the
        reference: no answer entry named `method` gives `{}`, exactly one is decoded as JSON
        whatever its content type, several are an error.

        Raises:
            InvalidFieldsError: `method` is not a usable name or `args` is not JSON-serialisable.
            NotAcceptedError: the answer is ambiguous or not JSON.
            PeerError, PeerTimeoutError, NotConnectedError: from the link.
        """
        if not isinstance(method, str) or not method or not method.isascii():
            raise InvalidFieldsError(f"rpc method must be a non-empty ASCII string, got {method!r}")
        if method in RESERVED_NAMES:
            raise InvalidFieldsError(f"rpc method {method!r} is a side protocol the plugin answers")
        if self._send is None:
            raise NotAcceptedError("rpc is not bound to a plugin yet")
        try:
            data = json.dumps(args, separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            raise InvalidFieldsError(f"rpc {method} args are not JSON: {exc}") from None
        entry = ProtocolData(method, ContentType.APPLICATION_JSON, data)
        response = await self._send(Message(0, (entry,)))
        answers = [pd for pd in response.protocol_data if pd.protocol_name == method]
        if not answers:
            return {}
        if len(answers) > 1:
            raise NotAcceptedError(f"ambiguous response for rpc {method}: {len(answers)} entries")
        try:
            return json.loads(answers[0].data)
        except (ValueError, RecursionError):
            raise NotAcceptedError(f"response for rpc {method} is not JSON") from None

    def add_method(self, name: str, handler: RpcHandler) -> None:
        """Answer the peer's calls of `name` with `handler(value)` (sync or async).

        A handler returning None is answered with JSON `null` (the reference failed there).
        """
        if not isinstance(name, str) or not name or not name.isascii():
            raise InvalidFieldsError(f"rpc method name must be non-empty ASCII, got {name!r}")
        if name in RESERVED_NAMES:
            raise InvalidFieldsError(f"rpc method {name!r} is a side protocol the plugin answers")
        if not callable(handler):
            raise InvalidFieldsError(f"rpc handler for {name!r} must be callable")
        self._methods[name] = handler

    def has_method(self, name: str) -> bool:
        """Whether the peer's calls of `name` are answered here."""
        return name in self._methods

    async def handle(self, message: Message) -> Response:
        """The Response to a peer's Message made only of module side protocols.

        Every entry must name a registered method (else nothing runs and the whole Message is
        refused, F00 "Unrecognized side protocol: <name>", as the reference); for a repeated name
        the last entry wins. Each answer is an entry of the same name with JSON data.
        """
        calls: dict[str, ProtocolData] = {}
        for pd in message.protocol_data:
            calls[pd.protocol_name] = pd
        for name in calls:
            if name not in self._methods:
                raise NotAcceptedError(f"Unrecognized side protocol: {name}")
        answers: list[ProtocolData] = []
        for name, pd in calls.items():
            result = self._methods[name](decode_value(pd))
            if inspect.isawaitable(result):
                result = await result
            try:
                data = json.dumps(result, separators=(",", ":")).encode()
            except (TypeError, ValueError):
                _log.warning("rpc method %s returned a value that is not JSON: %r", name, result)
                raise NotAcceptedError(f"rpc method {name} returned no JSON value") from None
            answers.append(ProtocolData(name, ContentType.APPLICATION_JSON, data))
        return Response(message.request_id, tuple(answers))


def decode_value(pd: ProtocolData) -> Any:
    """A side protocol's value as the reference reads it: JSON, text, or raw bytes."""
    if pd.content_type == ContentType.APPLICATION_JSON:
        try:
            return json.loads(pd.data)
        except (ValueError, RecursionError):
            raise InvalidFieldsError(
                f"side protocol {pd.protocol_name!r} has content type JSON but invalid JSON data"
            ) from None
    if pd.content_type == ContentType.TEXT_PLAIN_UTF8:
        try:
            return pd.data.decode()
        except UnicodeDecodeError:
            raise InvalidFieldsError(
                f"side protocol {pd.protocol_name!r} has content type text but invalid UTF-8"
            ) from None
    return pd.data


def encode_value(name: str, value: Any) -> ProtocolData:
    """A side-protocol entry for a value as the reference ships it: bytes raw, str text, else JSON.

    Raises:
        TypeError/ValueError: the value is not JSON-serialisable.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        return ProtocolData(name, ContentType.OCTET_STREAM, bytes(value))
    if isinstance(value, str):
        return ProtocolData(name, ContentType.TEXT_PLAIN_UTF8, value.encode())
    return ProtocolData(
        name, ContentType.APPLICATION_JSON, json.dumps(value, separators=(",", ":")).encode()
    )
