"""Suite-wide test configuration. Layer-specific fixtures live in each folder's conftest.py."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: Byte-exact data produced by the JavaScript reference libraries (see vectors/README.md).
VECTORS = Path(__file__).resolve().parent / "vectors"
