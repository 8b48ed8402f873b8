"""Real inputs for the mutators, read from the vector files the rest of the suite uses.

Every seed is something the JavaScript reference really produced, so a mutation of it sits near
the inputs a peer sends, where the interesting decoder branches are.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from conftest import VECTORS
from ilp_paychan.codec import CodecError, ProtocolData, decode, decode_ilp

BTP_FILES = ("message", "response", "error", "prepare", "fulfill", "reject")


@dataclass(frozen=True)
class Seeds:
    """The seed inputs of every decoder, grouped by what they are."""

    btp: tuple[bytes, ...]
    ilp: tuple[bytes, ...]
    b64url: tuple[str, ...]
    int64: tuple[bytes, ...]
    timestamps: tuple[bytes, ...]
    entries: tuple[ProtocolData, ...]
    counts: dict[str, int] = field(default_factory=dict)


def _load(relative: str) -> Any:
    return json.loads((VECTORS / relative).read_text(encoding="utf-8"))


def _transcript_frames() -> list[bytes]:
    frames = []
    for path in sorted(Path(VECTORS, "transcripts").glob("*.json")):
        log = json.loads(path.read_text(encoding="utf-8"))["log"]
        frames += [bytes.fromhex(e["hex"]) for e in log if e.get("kind") == "frame"]
    return frames


def _unique(items: list[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(items))


@cache
def load_seeds() -> Seeds:
    """Read every vector file once; the same seeds for every run (the order is fixed)."""
    frames = [
        bytes.fromhex(v["hex"]) for name in BTP_FILES for v in _load(f"btp/{name}.json")["vectors"]
    ]
    frames += [bytes.fromhex(c["hex"]) for c in _load("btp/decode-edge-cases.json")["cases"]]
    frames += _transcript_frames()
    frames_t = _unique(frames)

    entries: list[ProtocolData] = []
    for frame in frames_t:
        with contextlib.suppress(CodecError):
            entries += decode(frame).protocol_data
    ilp = [bytes.fromhex(v["hex"]) for v in _load("ilp/ilp-packet-v1.json")["vectors"]]
    ilp += [e.data for e in entries if e.protocol_name == "ilp" and e.data]
    ilp_t = tuple(p for p in _unique(ilp) if _is_ilp(p)) or _unique(ilp)

    conditions = _load("conditions.json")
    b64 = [v[k] for v in conditions["vectors"] for k in ("fulfillment", "condition")]
    b64 += [v[k] for v in conditions["negative"] for k in ("fulfillment", "condition")]
    for case in _load("lpi-protocol-data.json")["toProtocolData"]:
        text = case.get("input", {}).get("ilp")
        if isinstance(text, str):
            b64.append(text)

    balance = _load("int64-balance.json")
    int64 = [bytes.fromhex(v["hex"]) for v in balance["vectors"]]
    int64 += [bytes.fromhex(q[k]) for q in balance["quirks"] for k in ("hex", "inputHex") if k in q]

    primitives = _load("oer/primitives.json")["vectors"]
    stamps = [
        v["asciiOnWire"].encode("ascii") for v in primitives if v["kind"] == "GeneralizedTime"
    ]

    seeds = Seeds(
        btp=frames_t,
        ilp=ilp_t,
        b64url=_unique(b64),
        int64=_unique(int64),
        timestamps=_unique(stamps),
        entries=_unique(entries),
    )
    seeds.counts.update(
        btp=len(seeds.btp),
        ilp=len(seeds.ilp),
        b64url=len(seeds.b64url),
        int64=len(seeds.int64),
        timestamps=len(seeds.timestamps),
        entries=len(seeds.entries),
    )
    return seeds


def _is_ilp(raw: bytes) -> bool:
    try:
        decode_ilp(raw)
    except CodecError:
        return False
    return True
