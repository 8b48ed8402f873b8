"""codec layer: pure functions between bytes and packets (OER, BTP 1.0, ILP v1, conditions).

Today's Interledger lives in submodules, imported by name: `ilp4` (ILPv4 packets), `btp2`
(BTP 2.0), `ildcp`, `ilp_compat` (the transitional ILP packets 9-11) and `address` (RFC 15).

No I/O, no asyncio, no imports from other layers. The only exception raised is `CodecError`.
"""

from .btp import (
    ContentType,
    Error,
    Fulfill,
    Message,
    Packet,
    Prepare,
    ProtocolData,
    Reject,
    Response,
    decode,
    encode,
    protocol_data_map,
)
from .condition import b64url_decode, b64url_encode, condition_of, fulfillment_matches
from .errors import CodecError
from .ilp import (
    IlpError,
    IlpPacket,
    IlpPayment,
    IlqpByDestinationRequest,
    IlqpByDestinationResponse,
    IlqpBySourceRequest,
    IlqpBySourceResponse,
    IlqpLiquidityRequest,
    IlqpLiquidityResponse,
    decode_ilp,
    encode_ilp,
)
from .int64 import decode_int64, encode_int64
from .oer import decode_timestamp, encode_timestamp

BtpError = Error
"""Alias of `btp.Error` for code that also handles ILP errors and Python exceptions."""

__all__ = [
    "BtpError",
    "CodecError",
    "ContentType",
    "Error",
    "Fulfill",
    "IlpError",
    "IlpPacket",
    "IlpPayment",
    "IlqpByDestinationRequest",
    "IlqpByDestinationResponse",
    "IlqpBySourceRequest",
    "IlqpBySourceResponse",
    "IlqpLiquidityRequest",
    "IlqpLiquidityResponse",
    "Message",
    "Packet",
    "Prepare",
    "ProtocolData",
    "Reject",
    "Response",
    "b64url_decode",
    "b64url_encode",
    "condition_of",
    "decode",
    "decode_ilp",
    "decode_int64",
    "decode_timestamp",
    "encode",
    "encode_ilp",
    "encode_int64",
    "encode_timestamp",
    "fulfillment_matches",
    "protocol_data_map",
]
