"""LPI fields ↔ BTP protocol data, as the reference's protocolDataConverter.

What this module is for: the one place that decides which content type a side-protocol value
travels as and how a received entry is read back. Pure functions, no I/O.

Outgoing order: `ilp` (octet-stream) first, then explicit side protocols, then `custom` (JSON).
An explicit value travels as octet-stream if it is bytes, as UTF-8 text if it is a str, else as
compact JSON (what `JSON.stringify` writes).

Incoming: the last entry of a name wins (as in the reference, for wire compatibility); content
type 1 is text, 2 is JSON, anything else raw bytes. The `ilp` field is always the base64url of the
entry's raw bytes, whatever its content type says (the reference re-encoded decoded
text/JSON); an empty `ilp` entry counts as absent. Invalid UTF-8 or JSON raises InvalidFieldsError
naming the entry (the reference leaked a SyntaxError).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ilp_paychan.codec.btp import ContentType, ProtocolData
from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.plugin.validate import b64url

_OCTETS = int(ContentType.OCTET_STREAM)
_TEXT = int(ContentType.TEXT_PLAIN_UTF8)
_JSON = int(ContentType.APPLICATION_JSON)


def dump_json(value: Any) -> bytes:
    """Compact UTF-8 JSON, byte-identical to `JSON.stringify` for plain data."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as error:
        raise InvalidFieldsError(f"invalid custom: not JSON-serialisable ({error})") from None
    # A lone surrogate (which JSON text may carry as an escape) goes back out as that escape,
    # as JSON.stringify writes it; strict UTF-8 would refuse it.
    return text.encode("utf-8", "backslashreplace")


def side_protocol_entry(name: str, value: Any) -> ProtocolData:
    """One explicit side-protocol entry; the content type follows the value's type."""
    if isinstance(value, bytes | bytearray | memoryview):
        return ProtocolData(name, _OCTETS, bytes(value))
    if isinstance(value, str):
        return ProtocolData(name, _TEXT, value.encode("utf-8"))
    return ProtocolData(name, _JSON, dump_json(value))


def to_protocol_data(
    ilp: bytes | None = None,
    custom: Any = None,
    side_protocols: Mapping[str, Any] | None = None,
) -> tuple[ProtocolData, ...]:
    """The entries for an LPI record's `ilp` bytes, explicit side protocols and `custom`."""
    entries: list[ProtocolData] = []
    if ilp:
        entries.append(ProtocolData("ilp", _OCTETS, ilp))
    if side_protocols:
        entries.extend(side_protocol_entry(name, value) for name, value in side_protocols.items())
    if custom is not None:
        entries.append(ProtocolData("custom", _JSON, dump_json(custom)))
    return tuple(entries)


def decode_entry(entry: ProtocolData) -> Any:
    """An entry's value by content type: text → str, JSON → value, anything else → bytes."""
    if entry.content_type == _TEXT:
        try:
            return entry.data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidFieldsError(f"invalid {entry.protocol_name}: not UTF-8 text") from None
    if entry.content_type == _JSON:
        try:
            return json.loads(entry.data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise InvalidFieldsError(f"invalid {entry.protocol_name}: not JSON") from None
        except RecursionError:
            name = entry.protocol_name
            raise InvalidFieldsError(f"invalid {name}: JSON nested too deeply") from None
    return entry.data


def entries_by_name(entries: Iterable[ProtocolData]) -> dict[str, ProtocolData]:
    """Name → entry, the last entry of a name winning."""
    return {entry.protocol_name: entry for entry in entries}


def from_protocol_data(entries: Iterable[ProtocolData]) -> dict[str, Any]:
    """Name → decoded value for every entry (last wins)."""
    return {name: decode_entry(entry) for name, entry in entries_by_name(entries).items()}


def lpi_fields(by_name: Mapping[str, ProtocolData]) -> dict[str, Any]:
    """The `ilp` (base64url of the raw bytes) and `custom` (decoded) fields present, if any."""
    fields: dict[str, Any] = {}
    ilp = by_name.get("ilp")
    if ilp is not None and ilp.data:
        fields["ilp"] = b64url(ilp.data)
    custom = by_name.get("custom")
    if custom is not None:
        fields["custom"] = decode_entry(custom)
    return fields
