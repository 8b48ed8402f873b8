"""ilp-protocol-stream 2.7.2-alpha.3 itself, run by node: it re-makes the committed vectors, reads
packets we encrypt, accepts the addresses our server code hands out, and verifies our receipts.

The pinned package is installed with `npm ci` into tests/interop/js_stream/node_modules the first
time (a few seconds), like the plugin interop suite's reference.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan.stream import (
    UINT64_MAX,
    ConnectionKeys,
    IlpPacketType,
    StreamPacket,
    create_receipt,
    encrypt_packet,
    generate_address_and_secret,
)
from ilp_paychan.stream import frames as f
from interop.nodeproc import npm_install, require_node

from ._vectors import STREAM_VECTORS, load, packet_from_json, packet_to_json

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]

JS_DIR = Path(__file__).resolve().parents[1] / "interop" / "js_stream"
SCRIPT = JS_DIR / "vectors.js"
VECTOR_FILES = (
    "packets.json",
    "decode-edge-cases.json",
    "crypto.json",
    "tokens.json",
    "receipts.json",
)


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, with the pinned ilp-protocol-stream installed next to the script."""
    require_node()
    npm_install(JS_DIR)
    node = shutil.which("node")
    assert node is not None
    return node


def _check(node: str, request: dict[str, Any]) -> dict[str, Any]:
    result = subprocess.run(
        [node, str(SCRIPT), "check"],
        input=json.dumps(request),
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def _without_error_texts(value: Any) -> Any:
    """Node's error texts change between Node versions; whether a case failed does not."""
    if isinstance(value, dict):
        return {k: _without_error_texts(v) for k, v in value.items() if k != "error"}
    if isinstance(value, list):
        return [_without_error_texts(v) for v in value]
    return value


def test_generator_reproduces_the_committed_vectors(node: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [node, str(SCRIPT), "generate", str(tmp_path)],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for name in VECTOR_FILES:
        fresh = json.loads((tmp_path / name).read_text(encoding="utf-8"))
        committed = json.loads((STREAM_VECTORS / name).read_text(encoding="utf-8"))
        assert _without_error_texts(fresh) == _without_error_texts(committed), name


def _random_packet(rng: random.Random) -> StreamPacket:
    def u64() -> int:
        return rng.choice([0, 1, 255, 256, UINT64_MAX, rng.getrandbits(rng.randint(1, 64))])

    def text() -> str:
        return "".join(rng.choice("aZ09 ~._-éü€💸") for _ in range(rng.randint(0, 30)))

    makers = [
        lambda: f.ConnectionCloseFrame(rng.randint(0, 255), text()),
        lambda: f.ConnectionNewAddressFrame(text()),
        lambda: f.ConnectionMaxDataFrame(u64()),
        lambda: f.ConnectionDataBlockedFrame(u64()),
        lambda: f.ConnectionMaxStreamIdFrame(u64()),
        lambda: f.ConnectionStreamIdBlockedFrame(u64()),
        lambda: f.ConnectionAssetDetailsFrame(text(), rng.randint(0, 255)),
        lambda: f.StreamCloseFrame(u64(), rng.randint(0, 255), text()),
        lambda: f.StreamMoneyFrame(u64(), u64()),
        lambda: f.StreamMaxMoneyFrame(u64(), u64(), u64()),
        lambda: f.StreamMoneyBlockedFrame(u64(), u64(), u64()),
        lambda: f.StreamDataFrame(u64(), u64(), rng.randbytes(rng.randint(0, 300))),
        lambda: f.StreamMaxDataFrame(u64(), u64()),
        lambda: f.StreamDataBlockedFrame(u64(), u64()),
        lambda: f.StreamReceiptFrame(u64(), rng.randbytes(rng.choice([0, 58, 100]))),
    ]
    frames = tuple(rng.choice(makers)() for _ in range(rng.randint(0, 10)))
    return StreamPacket(u64(), rng.choice(list(IlpPacketType)), u64(), frames)


def test_reference_decrypts_our_packets(node: str) -> None:
    rng = random.Random(29)
    packets = [packet_from_json(v["packet"]) for v in load("packets.json")["vectors"]]
    packets += [_random_packet(rng) for _ in range(200)]
    requests, expected = [], []
    for i, packet in enumerate(packets):
        secret = os.urandom(32) if i % 2 else rng.randbytes(rng.randint(1, 64))
        keys = ConnectionKeys(secret)
        pad_to = None if i % 5 else len(encrypt_packet(packet, keys)) + rng.randint(0, 200)
        data = encrypt_packet(packet, keys, pad_to=pad_to)
        requests.append({"sharedSecretHex": secret.hex(), "dataHex": data.hex()})
        expected.append(
            {"packet": packet_to_json(packet), "fulfillmentHex": keys.fulfillment(data).hex()}
        )
    answer = _check(node, {"decrypt": requests})["decrypted"]
    assert len(answer) == len(expected)
    for got, want in zip(answer, expected, strict=True):
        assert got["ok"], got
        assert got["packet"] == want["packet"]
        assert got["fulfillmentHex"] == want["fulfillmentHex"]


def test_reference_refuses_our_packet_under_another_secret(node: str) -> None:
    packet = StreamPacket(1, IlpPacketType.PREPARE, 10, (f.StreamMoneyFrame(1, 1),))
    data = encrypt_packet(packet, ConnectionKeys(bytes(32)))
    answer = _check(node, {"decrypt": [{"sharedSecretHex": "01" * 32, "dataHex": data.hex()}]})
    assert answer["decrypted"][0]["ok"] is False


def test_reference_server_accepts_our_addresses(node: str) -> None:
    server_secret = os.urandom(32)
    server_address = "test.py.server"
    cases: list[dict[str, Any]] = [
        {},
        {"connection_tag": "order-42"},
        {"connection_tag": "every ~!@#$%^&*()_+ ascii"},
        {"receipt_nonce": os.urandom(16), "receipt_secret": os.urandom(32)},
        {"connection_tag": "t", "receipt_nonce": os.urandom(16), "receipt_secret": os.urandom(32)},
    ]
    requests = []
    for options in cases:
        address, secret = generate_address_and_secret(server_secret, server_address, **options)
        prepare = StreamPacket(
            1, IlpPacketType.PREPARE, 0, (f.ConnectionNewAddressFrame("test.c"),)
        )
        requests.append(
            {
                "serverSecretHex": server_secret.hex(),
                "serverAddress": server_address,
                "destinationAccount": address,
                "dataHex": encrypt_packet(prepare, ConnectionKeys(secret)).hex(),
                "secret": secret.hex(),
            }
        )
    answer = _check(node, {"connections": requests})["connections"]
    for options, request, got in zip(cases, requests, answer, strict=True):
        assert got["ok"], got
        assert got["sharedSecretHex"] == request["secret"]
        assert got["connectionTag"] == options.get("connection_tag")
        nonce, receipt_secret = options.get("receipt_nonce"), options.get("receipt_secret")
        assert got["receiptNonceHex"] == (nonce.hex() if nonce else None)
        assert got["receiptSecretHex"] == (receipt_secret.hex() if receipt_secret else None)


def test_reference_server_refuses_an_address_of_another_secret(node: str) -> None:
    address, secret = generate_address_and_secret(os.urandom(32), "test.py.server")
    prepare = StreamPacket(1, IlpPacketType.PREPARE, 0, ())
    request = {
        "serverSecretHex": os.urandom(32).hex(),
        "serverAddress": "test.py.server",
        "destinationAccount": address,
        "dataHex": encrypt_packet(prepare, ConnectionKeys(secret)).hex(),
    }
    assert _check(node, {"connections": [request]})["connections"][0]["ok"] is False


def test_reference_verifies_our_receipts(node: str) -> None:
    rng = random.Random(39)
    requests, expected = [], []
    for _ in range(20):
        nonce, secret = rng.randbytes(16), rng.randbytes(32)
        stream_id, total = rng.randint(0, 255), rng.getrandbits(64)
        receipt = create_receipt(nonce, stream_id, total, secret)
        requests.append({"receiptHex": receipt.hex(), "secretHex": secret.hex()})
        expected.append({"ok": True, "streamId": stream_id, "totalReceived": str(total)})
    assert _check(node, {"receipts": requests})["receipts"] == expected
