"""protocol_data.py against vectors/lpi-protocol-data.json (the reference's converter)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ilp_paychan.codec.btp import ProtocolData
from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.plugin.protocol_data import (
    entries_by_name,
    from_protocol_data,
    lpi_fields,
    to_protocol_data,
)
from ilp_paychan.plugin.validate import parse_base64

from .conftest import VECTORS

DATA = json.loads((VECTORS / "lpi-protocol-data.json").read_text())


def _value(value: Any) -> Any:
    """A vector value: {"hex": ...} stands for bytes."""
    if isinstance(value, dict) and set(value) == {"hex"}:
        return bytes.fromhex(value["hex"])
    return value


def _entries(raw: list[dict[str, Any]]) -> tuple[ProtocolData, ...]:
    return tuple(
        ProtocolData(e["protocolName"], e["contentType"], bytes.fromhex(e["dataHex"])) for e in raw
    )


@pytest.mark.parametrize("vector", DATA["toProtocolData"], ids=lambda v: v["id"])
def test_lpi_fields_map_to_protocol_data_as_the_reference(vector: dict[str, Any]) -> None:
    given = vector["input"]
    ilp = parse_base64(given["ilp"]) if "ilp" in given else None
    side = {name: _value(value) for name, value in given.get("protocolMap", {}).items()}
    assert to_protocol_data(ilp, given.get("custom"), side) == _entries(vector["protocolData"])


@pytest.mark.parametrize("vector", DATA["fromProtocolData"], ids=lambda v: v["id"])
def test_protocol_data_maps_back_as_the_reference(vector: dict[str, Any]) -> None:
    entries = _entries(vector["protocolData"])
    result = vector["result"]
    expected_map = {name: _value(value) for name, value in result["protocolMap"].items()}
    assert from_protocol_data(entries) == expected_map
    fields = lpi_fields(entries_by_name(entries))
    if result.get("ilp"):
        assert fields["ilp"] == result["ilp"]
    else:
        assert "ilp" not in fields  # an empty ilp entry counts as absent
    if "custom" in result:
        assert fields["custom"] == result["custom"]


def test_ilp_sent_as_json_is_exposed_as_its_raw_bytes() -> None:
    """The reference re-serialised decoded JSON; we keep the bytes as sent."""
    fields = lpi_fields(entries_by_name([ProtocolData("ilp", 2, b'{ "a" : 1 }')]))
    assert fields["ilp"] == "eyAiYSIgOiAxIH0"


def test_invalid_json_names_the_entry() -> None:
    with pytest.raises(InvalidFieldsError, match="custom"):
        lpi_fields(entries_by_name([ProtocolData("custom", 2, b"{oops")]))


def test_non_json_custom_is_refused_before_sending() -> None:
    with pytest.raises(InvalidFieldsError, match="custom"):
        to_protocol_data(custom={"a": object()})
