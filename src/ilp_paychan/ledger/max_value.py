"""MaxValueTracker: the largest entry ever offered under a key, kept atomically in the store.

Payment-channel modules keep their best incoming claim or the amount already settled here; the
compare-and-set runs inside the store, so two processes never lose each other's update
(the reference serialised it with a queue in one process only).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.ledger.inputs import parse_signed, to_json
from ilp_paychan.ledger.store import LedgerStore


class MaxValueTracker:
    """The max entry `{"value": str, "data": Any}` under one key of a store."""

    __slots__ = ("_store", "key")

    def __init__(self, store: LedgerStore, key: str) -> None:
        self._store = store
        self.key = key

    async def get_max(self) -> dict[str, Any]:
        """The current max entry; `{"value": "0", "data": None}` when nothing was set."""
        entry: dict[str, Any] = json.loads(await self._store.read_max(self.key))
        return entry

    async def set_if_max(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        """Make `entry` the max if its value is strictly larger than the current one.

        Returns:
            The previous max entry if `entry` replaced it, else `entry` itself (a copy).

        Raises:
            InvalidFieldsError: no value, a value that is not an integer, or data that is not
                JSON-serialisable.
        """
        if not isinstance(entry, Mapping):
            raise InvalidFieldsError(f"entry must be a mapping, got {type(entry).__name__}")
        raw = entry.get("value")
        if raw is None or raw == "":
            raise InvalidFieldsError(f"entry {_describe(entry)} must have a value")
        value = parse_signed(raw, "value")
        stored = to_json({"value": str(value), "data": entry.get("data")}, "data")
        previous = await self._store.set_if_max(self.key, value, stored)
        if previous is None:
            return dict(entry)
        result: dict[str, Any] = json.loads(previous)
        return result


def _describe(entry: Mapping[str, Any]) -> str:
    try:
        return json.dumps(dict(entry), separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(dict(entry))
