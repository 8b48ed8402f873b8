"""STREAM (RFC 29): money and data over ILPv4 between two holders of a shared secret.

The protocol, over any v2 plugin (`v2.PluginV2`): `pay` for one payment, `connect` for a
long-lived `Connection` with several `DataAndMoneyStream`s, `StreamServer` to receive. Their
failures are `StreamError` subclasses (`stream.errors`), one per cause.

Underneath, the pure foundation: the packet and frame codec (`stream.packet`, `stream.frames`),
packet encryption and condition/fulfillment derivation (`stream.crypto`), a server's connection
addresses and shared secrets (`stream.address`), receipts (`stream.receipt`), and the sender's
rate and packet-size arithmetic (`stream.rate`). Every decoding or encoding fault raises
`StreamCodecError` (a `codec.CodecError`) naming the field; ciphertext that does not
authenticate raises its subclass `DecryptionError`.
"""

from .address import (
    ConnectionToken,
    connection_id_of,
    generate_address_and_secret,
    open_token,
    seal_token,
    token_of,
)
from .client import connect, fetch_config
from .connection import Connection, ConnectionOptions, ShouldFulfill
from .crypto import (
    ENCRYPTION_OVERHEAD,
    ConnectionKeys,
    condition_of,
    decrypt,
    encrypt,
    encryption_key,
    fulfillment_key,
    fulfillment_of,
    random_condition,
    shared_secret_from_token,
)
from .errors import (
    ConnectionClosedError,
    DecryptionError,
    ExchangeRateError,
    InsufficientLiquidityError,
    NoRouteError,
    PaymentTimeoutError,
    ReceiverRefusedError,
    RejectedError,
    StreamCodecError,
    StreamError,
)
from .frames import (
    UINT64_MAX,
    ConnectionAssetDetailsFrame,
    ConnectionCloseFrame,
    ConnectionDataBlockedFrame,
    ConnectionMaxDataFrame,
    ConnectionMaxStreamIdFrame,
    ConnectionNewAddressFrame,
    ConnectionStreamIdBlockedFrame,
    ErrorCode,
    Frame,
    FrameType,
    StreamCloseFrame,
    StreamDataBlockedFrame,
    StreamDataFrame,
    StreamMaxDataFrame,
    StreamMaxMoneyFrame,
    StreamMoneyBlockedFrame,
    StreamMoneyFrame,
    StreamReceiptFrame,
)
from .packet import (
    MAX_DATA_SIZE,
    IlpPacketType,
    StreamPacket,
    decode_packet,
    decrypt_packet,
    encode_packet,
    encrypt_packet,
)
from .pay import PaymentReceipt, pay
from .receipt import Receipt, create_receipt, decode_receipt, verify_receipt
from .server import StreamServer
from .stream import DataAndMoneyStream

__all__ = [
    "ENCRYPTION_OVERHEAD",
    "MAX_DATA_SIZE",
    "UINT64_MAX",
    "Connection",
    "ConnectionAssetDetailsFrame",
    "ConnectionCloseFrame",
    "ConnectionClosedError",
    "ConnectionDataBlockedFrame",
    "ConnectionKeys",
    "ConnectionMaxDataFrame",
    "ConnectionMaxStreamIdFrame",
    "ConnectionNewAddressFrame",
    "ConnectionOptions",
    "ConnectionStreamIdBlockedFrame",
    "ConnectionToken",
    "DataAndMoneyStream",
    "DecryptionError",
    "ErrorCode",
    "ExchangeRateError",
    "Frame",
    "FrameType",
    "IlpPacketType",
    "InsufficientLiquidityError",
    "NoRouteError",
    "PaymentReceipt",
    "PaymentTimeoutError",
    "Receipt",
    "ReceiverRefusedError",
    "RejectedError",
    "ShouldFulfill",
    "StreamCloseFrame",
    "StreamCodecError",
    "StreamDataBlockedFrame",
    "StreamDataFrame",
    "StreamError",
    "StreamMaxDataFrame",
    "StreamMaxMoneyFrame",
    "StreamMoneyBlockedFrame",
    "StreamMoneyFrame",
    "StreamPacket",
    "StreamReceiptFrame",
    "StreamServer",
    "condition_of",
    "connect",
    "connection_id_of",
    "create_receipt",
    "decode_packet",
    "decode_receipt",
    "decrypt",
    "decrypt_packet",
    "encode_packet",
    "encrypt",
    "encrypt_packet",
    "encryption_key",
    "fetch_config",
    "fulfillment_key",
    "fulfillment_of",
    "generate_address_and_secret",
    "open_token",
    "pay",
    "random_condition",
    "seal_token",
    "shared_secret_from_token",
    "token_of",
    "verify_receipt",
]
