"""ILP addresses (RFC 15), checked as ilp-packet 3.1.3's isValidIlpAddress checks them; errors
name the field."""

from __future__ import annotations

from typing import Any

import pytest

from ilp_paychan.codec import CodecError
from ilp_paychan.codec.address import (
    MAX_ADDRESS_LENGTH,
    address_bytes,
    address_text,
    is_valid_address,
)

VALID = [
    "g.a",
    "private.x",
    "example.alice",
    "peer.config",
    "self.x",
    "test.x",
    "test1.x",
    "test2.x",
    "test3.x",
    "local.x",
    "g.us-fed.ach.0.acmebank.swx0a0.acmecorp.sales.199.~ipr.cdfa5e16-e759-4ba3-88f6-8b9dc83c1868.2",
    "test.ABCDEFGHIJKLMNOPQRSTUVWXYZ.abcdefghijklmnopqrstuvwxyz.0123456789._~-",
    "g." + "a" * (MAX_ADDRESS_LENGTH - 2),
]
INVALID = [
    "",
    "g",
    "g.",
    "g.alice.",
    "g..alice",
    ".g.alice",
    "G.alice",
    "test4.x",
    "tests.x",
    "foo.bar",
    "g.al ice",
    "g.alice\n",
    "g.al\x00ice",
    "g.alicé",
    "g.a/b",
    "g.a+b",
    "g." + "a" * (MAX_ADDRESS_LENGTH - 1),
]


@pytest.mark.parametrize("address", VALID)
def test_valid_addresses_pass_both_ways(address: str) -> None:
    assert is_valid_address(address)
    raw = address.encode("ascii")
    assert address_bytes(address, "destination") == raw
    assert address_text(raw, "destination") == address
    assert address_text(raw, "destination") == address  # the remembered path


@pytest.mark.parametrize("address", INVALID)
def test_invalid_addresses_are_refused_naming_the_field(address: str) -> None:
    assert not is_valid_address(address)
    with pytest.raises(CodecError) as info:
        address_bytes(address, "triggeredBy")
    assert info.value.field == "triggeredBy"
    with pytest.raises(CodecError) as info:
        address_text(address.encode("utf-8"), "clientAddress")
    assert info.value.field == "clientAddress"


def test_empty_only_where_allowed() -> None:
    assert address_bytes("", "triggeredBy", allow_empty=True) == b""
    assert address_text(b"", "triggeredBy", allow_empty=True) == ""
    assert address_text(b"g.a", "triggeredBy", allow_empty=True) == "g.a"
    with pytest.raises(CodecError):
        address_text(b"nope", "triggeredBy", allow_empty=True)


def test_a_high_bit_byte_is_refused() -> None:
    # Node would read 0xe7 as "g" (high bit cleared); the routed address would differ.
    with pytest.raises(CodecError) as info:
        address_text(b"\xe7.alice", "destination")
    assert info.value.field == "destination"


@pytest.mark.parametrize("value", [None, 5, b"g.alice", ["g.a"], bytearray(b"g.a")])
def test_non_text_is_refused(value: Any) -> None:
    assert not is_valid_address(value)
    with pytest.raises(CodecError) as info:
        address_bytes(value, "destination")
    assert info.value.field == "destination"


def test_error_message_names_the_rfc_and_the_length() -> None:
    with pytest.raises(CodecError, match="RFC 15"):
        address_bytes("foo.bar", "destination")
    with pytest.raises(CodecError, match="at most 1023"):
        address_bytes("g." + "a" * 1100, "destination")
