"""Claim settlement between our Python plugin and the JavaScript reference, both roles.

The JS side runs the reference's makePaymentChannelPlugin with tests/interop/js/modules/
claim_module.js, the twin of examples/claim_channel (Node's own Ed25519): claims signed on one
side verify on the other, each receiver keeps its unsecured amount within maxUnsecured over
hundreds of concurrent transfers, and each cashes its best claim in on the shared simulated
ledger when it disconnects.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from claim_channel import module as claim_module
from claim_channel.claims import channel_id, private_key, public_bytes
from claim_channel.ledger import ChannelLedger

from ilp_paychan import Plugin, make_payment_channel_plugin
from ilp_paychan.errors import NotAcceptedError, PeerError
from interop.jspeer import JS_DIR, JsError, JsPeer, ensure_node_modules
from interop.nodeproc import require_node
from testkit.waiting import wait_until

from .helpers import INFO, PREFIX, SECRET, listener_port

pytestmark = pytest.mark.interop

JS_MODULE = JS_DIR / "modules" / "claim_module.js"
SEED_PY = "c3" * 32
SEED_JS = "d4" * 32
PUB_PY = public_bytes(private_key(SEED_PY))
PUB_JS = public_bytes(private_key(SEED_JS))
PY_ACCOUNT = PREFIX + PUB_PY.hex()[:16]
JS_ACCOUNT = PREFIX + PUB_JS.hex()[:16]
MAX_UNSECURED = 500
AMOUNT = 10
WAIT = 30.0


@pytest.fixture(scope="session")
def js_reference() -> None:
    require_node()
    ensure_node_modules()


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def condition_of(fulfillment: str) -> str:
    raw = base64.urlsafe_b64decode(fulfillment + "=" * (-len(fulfillment) % 4))
    return b64url(hashlib.sha256(raw).digest())


def transfer_to(account: str, condition: str, amount: int = AMOUNT) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "to": account,
        "amount": str(amount),
        "executionCondition": condition,
        "expiresAt": (datetime.now(UTC) + timedelta(seconds=30)).isoformat(),
    }


def module_options(seed: str, peer: bytes, ledger: Path, **extra: Any) -> dict[str, Any]:
    options = {
        "secret": seed,
        "peerPublicKey": peer.hex(),
        "ledgerPath": str(ledger),
        "channelAmount": "100000000",
        "maxUnsecured": str(MAX_UNSECURED),
        "maxBalance": "1000000000",
        "prefix": PREFIX,
        "info": dict(INFO),
    }
    options.update(extra)
    return options


class Pairing:
    """A Python plugin and a JS reference plugin, both with the claim module, connected."""

    def __init__(self, py: Plugin, js: JsPeer, ledger: ChannelLedger) -> None:
        self.py = py
        self.js = js
        self.ledger = ledger
        self.fulfillments: dict[str, str] = {}
        self.fulfilling: set[asyncio.Task[None]] = set()
        py.on("incoming_prepare", self._auto_fulfill)

    def _auto_fulfill(self, transfer: dict[str, Any]) -> None:
        fulfillment = self.fulfillments.get(transfer["executionCondition"])
        if fulfillment is not None:
            task = asyncio.ensure_future(self.py.fulfill_condition(transfer["id"], fulfillment))
            self.fulfilling.add(task)
            task.add_done_callback(self.fulfilling.discard)

    async def js_store(self) -> dict[str, Any]:
        store: dict[str, Any] = await self.js.call("storeDump")
        return store

    async def js_best_claim(self) -> int:
        raw = (await self.js_store()).get("incoming_claim:mvt:maximum")
        if not raw:
            return 0
        import json

        return int(json.loads(raw)["value"])

    async def py_best_claim(self) -> int:
        backend = self.py.backend
        assert backend is not None
        return int((await backend.get_max_value_tracker("incoming_claim").get_max())["value"])


async def start_pairing(
    tmp_path: Path,
    py_listens: bool,
    js_extra: dict[str, Any] | None = None,
    py_module: Any = claim_module,
) -> Pairing:
    ledger_path = tmp_path / "chain"
    py_options = module_options(SEED_PY, PUB_JS, ledger_path, store=f"sqlite:///{tmp_path}/py.db")
    js_options = module_options(SEED_JS, PUB_PY, ledger_path, **(js_extra or {}))
    cls = make_payment_channel_plugin(py_module)
    if py_listens:
        py = cls(
            {**py_options, "listener": {"port": 0, "host": "127.0.0.1"}, "incomingSecret": SECRET}
        )
        await py.connect()
        js_options["server"] = f"btp+ws://:{SECRET}@127.0.0.1:{listener_port(py)}"
        js = await JsPeer.start({"options": js_options, "stateful": True}, module=str(JS_MODULE))
        await js.call("connect")
    else:
        js_options.update(listener={"port": 0}, incomingSecret=SECRET)
        js = await JsPeer.start({"options": js_options, "stateful": True}, module=str(JS_MODULE))
        await js.call("connect")
        assert js.port is not None
        py = cls({**py_options, "server": f"btp+ws://:{SECRET}@127.0.0.1:{js.port}"})
        await py.connect()

    async def exchanged() -> bool:
        task = py._hooks.ctx.state.resync  # type: ignore[attr-defined]
        return task is None or bool(task.done())

    await poll(exchanged, "the claim exchange after connect")
    return Pairing(py, js, ChannelLedger(ledger_path))


@pytest.fixture
async def pairings(js_reference: None, tmp_path: Path) -> AsyncIterator[list[Pairing]]:
    started: list[Pairing] = []
    yield started
    for p in started:
        await p.js.close()
        await p.py.disconnect()


async def poll(predicate: Callable[[], Awaitable[bool]], what: str) -> None:
    await wait_until(predicate, what, WAIT)


def is_unsecured_refusal(exc: BaseException) -> bool:
    return "exceeds max unsecured" in str(exc)


async def py_pays_js(p: Pairing, count: int, concurrency: int = 25) -> int:
    """`count` transfers Python → JS, retried with a new id while JS refuses them; returns the
    number of refusals."""
    fulfillments = [b64url(os.urandom(32)) for _ in range(count)]
    await p.js.call("autoFulfill", fulfillments)
    gate = asyncio.Semaphore(concurrency)
    refusals = 0

    async def one(fulfillment: str) -> None:
        nonlocal refusals
        condition = condition_of(fulfillment)
        async with gate:
            for _ in range(500):
                try:
                    await p.py.send_transfer(transfer_to(JS_ACCOUNT, condition))
                    return
                except PeerError as exc:
                    if not is_unsecured_refusal(exc):
                        raise
                    refusals += 1
                    await asyncio.sleep(0.02)
            raise AssertionError("JS kept refusing")

    before = int(await p.py.transfer_log.get_outgoing_fulfilled())
    await asyncio.gather(*(one(f) for f in fulfillments))
    total = before + count * AMOUNT

    async def all_fulfilled() -> bool:
        return int(await p.py.transfer_log.get_outgoing_fulfilled()) == total

    await poll(all_fulfilled, "JS to fulfil every transfer")
    return refusals


async def js_pays_py(p: Pairing, count: int, concurrency: int = 25) -> int:
    """`count` transfers JS → Python, retried with a new id while Python refuses them."""
    gate = asyncio.Semaphore(concurrency)
    refusals = 0

    async def one() -> None:
        nonlocal refusals
        fulfillment = b64url(os.urandom(32))
        condition = condition_of(fulfillment)
        p.fulfillments[condition] = fulfillment
        async with gate:
            for _ in range(500):
                try:
                    await p.js.call("sendTransfer", transfer_to(PY_ACCOUNT, condition))
                    return
                except JsError as exc:
                    if not is_unsecured_refusal(exc):
                        raise
                    refusals += 1
                    await asyncio.sleep(0.02)
            raise AssertionError("Python kept refusing")

    before = int(await p.py.transfer_log.get_incoming_fulfilled())
    await asyncio.gather(*(one() for _ in range(count)))
    total = before + count * AMOUNT

    async def all_fulfilled() -> bool:
        return int(await p.py.transfer_log.get_incoming_fulfilled()) == total

    await poll(all_fulfilled, "Python to fulfil every transfer")
    return refusals


class Watch:
    """Samples a receiver's unsecured amount (incoming fulfilled − best claim) while work runs."""

    def __init__(self, sample: Callable[[], Awaitable[int]]) -> None:
        self.worst = 0
        self.samples = 0
        self._sample = sample
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.worst = max(self.worst, await self._sample())
            self.samples += 1
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@pytest.mark.parametrize("py_listens", [True, False], ids=["py-listens", "js-listens"])
async def test_python_and_javascript_settle_500_transfers_each_way(
    pairings: list[Pairing], tmp_path: Path, py_listens: bool
) -> None:
    p = await start_pairing(tmp_path, py_listens)
    pairings.append(p)
    count = 500 if py_listens else 150

    async def js_unsecured() -> int:
        store = await p.js_store()
        incoming = int(store.get(":tl:balance:if") or 0)
        return incoming - await p.js_best_claim()

    watch = Watch(js_unsecured)
    await py_pays_js(p, count)
    await poll(lambda: _equals(p.js_best_claim(), count * AMOUNT), "JS to keep the last claim")
    await watch.stop()
    assert watch.worst <= MAX_UNSECURED, "JS receiver"

    async def py_unsecured() -> int:
        incoming = int(await p.py.transfer_log.get_incoming_fulfilled())
        return incoming - await p.py_best_claim()

    watch = Watch(py_unsecured)
    await js_pays_py(p, count)
    await poll(lambda: _equals(p.py_best_claim(), count * AMOUNT), "Python to keep the claim")
    await watch.stop()
    assert watch.worst <= MAX_UNSECURED, "Python receiver"

    await p.js.call("disconnect")
    await p.py.disconnect()
    to_js = await p.ledger.get_channel(channel_id(PUB_PY, PUB_JS))
    to_py = await p.ledger.get_channel(channel_id(PUB_JS, PUB_PY))
    assert to_js is not None
    assert to_py is not None
    assert to_js.claimed == count * AMOUNT
    assert to_py.claimed == count * AMOUNT


async def test_each_side_refuses_a_transfer_beyond_max_unsecured(
    pairings: list[Pairing], tmp_path: Path
) -> None:
    p = await start_pairing(tmp_path, py_listens=True)
    pairings.append(p)
    fulfillment = b64url(os.urandom(32))
    await p.js.call("autoFulfill", [fulfillment])
    with pytest.raises(NotAcceptedError, match="exceeds max unsecured"):
        await p.py.send_transfer(
            transfer_to(JS_ACCOUNT, condition_of(fulfillment), MAX_UNSECURED + 1)
        )
    with pytest.raises(JsError, match="exceeds max unsecured"):
        await p.js.call(
            "sendTransfer", transfer_to(PY_ACCOUNT, condition_of(fulfillment), MAX_UNSECURED + 1)
        )
    assert await p.py.transfer_log.get_incoming_fulfilled_and_prepared() == "0"


async def test_forged_javascript_claims_are_ignored_by_python(
    pairings: list[Pairing], tmp_path: Path
) -> None:
    p = await start_pairing(tmp_path, py_listens=True, js_extra={"forgeClaims": True})
    pairings.append(p)
    await js_pays_py(p, MAX_UNSECURED // AMOUNT)
    with pytest.raises(JsError, match="exceeds max unsecured"):
        await p.js.call("sendTransfer", transfer_to(PY_ACCOUNT, condition_of(b64url(b"x" * 32))))
    assert await p.py_best_claim() == 0


async def test_forged_python_claims_are_ignored_by_javascript(
    pairings: list[Pairing], tmp_path: Path
) -> None:
    def forger(ctx: Any, opts: Any) -> None:
        claim_module.constructor(ctx, opts)
        ctx.state.key = private_key("ee" * 32)

    from types import SimpleNamespace

    hooks = {
        name: getattr(claim_module, name) for name in dir(claim_module) if not name.startswith("_")
    }
    hooks["constructor"] = forger
    p = await start_pairing(tmp_path, py_listens=False, py_module=SimpleNamespace(**hooks))
    pairings.append(p)
    await py_pays_js(p, MAX_UNSECURED // AMOUNT)
    fulfillment = b64url(os.urandom(32))
    await p.js.call("autoFulfill", [fulfillment])
    with pytest.raises(NotAcceptedError, match="exceeds max unsecured"):
        await p.py.send_transfer(transfer_to(JS_ACCOUNT, condition_of(fulfillment)))
    assert await p.js_best_claim() == 0


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def test_rpc_reaches_the_javascript_module_and_its_claims_verify_here(
    pairings: list[Pairing], tmp_path: Path
) -> None:
    from claim_channel.claims import claim_is_signed_by, parse_claim

    p = await start_pairing(tmp_path, py_listens=True)
    pairings.append(p)
    await js_pays_py(p, 3)
    await poll(lambda: _equals(p.py_best_claim(), 3 * AMOUNT), "the last claim from JS")
    ctx = p.py._hooks.ctx  # type: ignore[attr-defined]
    latest = await ctx.rpc.call("paychan_latest_claim", PREFIX, None)
    claim = parse_claim(latest)
    assert claim.balance == 3 * AMOUNT
    assert claim.channel == channel_id(PUB_JS, PUB_PY)
    assert claim_is_signed_by(PUB_JS, claim)
    with pytest.raises(PeerError, match="Unrecognized side protocol: no_such_method"):
        await ctx.rpc.call("no_such_method", PREFIX, {})


async def test_a_python_receiver_restarted_gets_the_javascript_claim_again(
    pairings: list[Pairing], tmp_path: Path
) -> None:
    """Python lost JS's claims (it crashed before keeping them); after its restart it asks the
    JS module for its latest claim over rpc."""
    from types import SimpleNamespace

    async def deaf(ctx: Any, claim: Any) -> None:
        return None

    async def crash(ctx: Any) -> None:
        return None

    def deaf_constructor(ctx: Any, opts: Any) -> None:
        claim_module.constructor(ctx, opts)
        ctx.rpc.add_method(claim_module.PUSH_CLAIM_METHOD, lambda claim: None)

    hooks = {
        name: getattr(claim_module, name) for name in dir(claim_module) if not name.startswith("_")
    }
    lossy = SimpleNamespace(
        **{
            **hooks,
            "constructor": deaf_constructor,
            "handle_incoming_claim": deaf,
            "disconnect": crash,
        }
    )
    p = await start_pairing(tmp_path, py_listens=False, py_module=lossy)
    pairings.append(p)
    await js_pays_py(p, 20)
    assert await p.py_best_claim() == 0
    await p.py.disconnect()
    py_options = module_options(
        SEED_PY,
        PUB_JS,
        tmp_path / "chain",
        store=f"sqlite:///{tmp_path}/py.db",
        server=f"btp+ws://:{SECRET}@127.0.0.1:{p.js.port}",
    )
    restarted = make_payment_channel_plugin(claim_module)(py_options)
    await restarted.connect()
    p.py = restarted
    await poll(lambda: _equals(p.py_best_claim(), 20 * AMOUNT), "the re-issued JS claim")
