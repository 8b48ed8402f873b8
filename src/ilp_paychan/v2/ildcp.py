"""ILDCP (RFC 31) over a v2 plugin: a child asks its parent for its address, asset code and scale.

`fetch(plugin)` sends the request (`codec.ildcp`: a Prepare to ``peer.config``, expiring after
60 s as ilp-protocol-ildcp's does) with `send_data` and reads the answer; a Reject or an answer
that is no ILDCP response raises `IldcpError` saying which. `answer(...)` is the parent's side that
`BtpPlugin` runs for a listener configured with `ildcp` options.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ilp_paychan.codec.address import is_valid_address
from ilp_paychan.codec.errors import CodecError
from ilp_paychan.codec.ildcp import (
    DEFAULT_EXPIRY,
    IldcpRequest,
    IldcpResponse,
    decode_response,
    encode_error,
    encode_request,
    encode_response,
)
from ilp_paychan.codec.ilp4 import IlpReject, decode_reply
from ilp_paychan.v2.errors import IldcpError
from ilp_paychan.v2.interface import PluginV2
from ilp_paychan.v2.options import IldcpSettings


@dataclass(frozen=True, slots=True)
class IldcpInfo:
    """What the parent assigned: our ILP address and the asset both sides count in."""

    client_address: str
    asset_scale: int
    asset_code: str


async def fetch(plugin: PluginV2, *, expiry: timedelta = DEFAULT_EXPIRY) -> IldcpInfo:
    """Ask the parent at the other end of `plugin` (connected) for our configuration.

    Raises:
        IldcpError: the parent rejected the request (its code and message are in the error) or
            answered with something that is no ILDCP response.
        NotConnectedError: the plugin is not connected.
    """
    request = encode_request(IldcpRequest(expires_at=datetime.now(UTC) + expiry))
    reply = await plugin.send_data(request)
    try:
        packet = decode_reply(reply)
    except CodecError as exc:
        raise IldcpError(
            f"the parent answered ILDCP with no ILP Fulfill or Reject ({exc})"
        ) from None
    if isinstance(packet, IlpReject):
        by = f" (triggered by {packet.triggered_by})" if packet.triggered_by else ""
        raise IldcpError(
            f"the parent rejected the ILDCP request: {packet.code} {packet.message!r}{by}",
            code=packet.code,
            reject_message=packet.message,
            triggered_by=packet.triggered_by,
        )
    try:
        response = decode_response(reply)
    except CodecError as exc:
        raise IldcpError(f"the parent's ILDCP response is malformed: {exc}") from None
    return IldcpInfo(response.client_address, response.asset_scale, response.asset_code)


def answer(settings: IldcpSettings, username: str | None, server_address: str) -> bytes:
    """The parent's answer (Fulfill, or the F00 Reject of `codec.ildcp.encode_error`) to its
    client's ILDCP request; `username` is the one the client authenticated with."""
    address = settings.client_address
    if address is None:
        prefix = settings.address_prefix
        candidate = f"{prefix}.{username}" if username else ""
        if not is_valid_address(candidate):
            reason = (
                f"its username {username!r} is no address segment"
                if username
                else "it sent no auth_username"
            )
            return encode_error(
                server_address, f"cannot assign the client an address under {prefix}: {reason}"
            )
        address = candidate
    return encode_response(IldcpResponse(address, settings.asset_scale, settings.asset_code))
