"""STREAM (RFC 29): money and data over ILPv4 between two holders of a shared secret.

So far the pure foundation: the packet and frame codec (`stream.packet`, `stream.frames`), packet
encryption and condition/fulfillment derivation (`stream.crypto`), a server's connection
addresses and shared secrets (`stream.address`) and receipts (`stream.receipt`). No I/O.
Every decoding or encoding fault raises `StreamCodecError` (a `codec.CodecError`) naming the
field; ciphertext that does not authenticate raises its subclass `DecryptionError`.
"""

from .address import (
    ConnectionToken,
    connection_id_of,
    generate_address_and_secret,
    open_token,
    seal_token,
    token_of,
)
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
from .errors import DecryptionError, StreamCodecError
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
from .receipt import Receipt, create_receipt, decode_receipt, verify_receipt

__all__ = [
    "ENCRYPTION_OVERHEAD",
    "MAX_DATA_SIZE",
    "UINT64_MAX",
    "ConnectionAssetDetailsFrame",
    "ConnectionCloseFrame",
    "ConnectionDataBlockedFrame",
    "ConnectionKeys",
    "ConnectionMaxDataFrame",
    "ConnectionMaxStreamIdFrame",
    "ConnectionNewAddressFrame",
    "ConnectionStreamIdBlockedFrame",
    "ConnectionToken",
    "DecryptionError",
    "ErrorCode",
    "Frame",
    "FrameType",
    "IlpPacketType",
    "Receipt",
    "StreamCloseFrame",
    "StreamCodecError",
    "StreamDataBlockedFrame",
    "StreamDataFrame",
    "StreamMaxDataFrame",
    "StreamMaxMoneyFrame",
    "StreamMoneyBlockedFrame",
    "StreamMoneyFrame",
    "StreamPacket",
    "StreamReceiptFrame",
    "condition_of",
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
    "fulfillment_key",
    "fulfillment_of",
    "generate_address_and_secret",
    "open_token",
    "random_condition",
    "seal_token",
    "shared_secret_from_token",
    "token_of",
    "verify_receipt",
]
