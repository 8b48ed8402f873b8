"""How an error message names a bad input without showing too much of it.

The config loader and the SPSP client both answer bad JSON with one line naming the field and
what came instead; these are the words they use, so a user sees one style everywhere. A leaf
module (imports nothing of this package), usable from any layer.
"""

from __future__ import annotations

from typing import Any

__all__ = ["clip", "json_kind"]


def json_kind(value: Any) -> str:
    """The JSON type of `value` in words ("a string", "null"...): what a message says instead
    of the value itself when that may be a secret or too long to print."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def clip(text: str, limit: int = 80) -> str:
    """`text` on one line and at most `limit` characters ("..." ending a cut one), so that a
    message quoting an input stays one readable line."""
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
