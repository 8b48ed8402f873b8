"""The durable trustline of `BtpPlugin`: the bilateral balance kept in the ledger layer.

What it is for: a v2 link whose peer may owe us at most `balance.maximum` and we it at most
`-balance.minimum`, where every change is one store transaction (memory, SQLite, or PostgreSQL
shared by several processes), packets in flight and unsettled amounts survive a restart, and
crossing `balance.settleThreshold` pays the peer back to `balance.settleTo` with `send_money`
(a BTP Transfer, with a payment-channel module's claim when one is given). It plugs into the
plugin's `Accounting` seam; nothing here touches the packet path otherwise.

The balance is ilp-connector's: ours, positive when the peer owes us. In TransferLog terms it is
IF - OF: a Prepare the peer sends us counts as an incoming transfer, one we send as an outgoing
one, money we send (settlement) as incoming and money we receive as outgoing, so the ledger's
own limit checks are the balance limits and hold across processes:
- an incoming Prepare is held (IFAP) while we answer it; one that would put the balance plus
  what is held above `maximum` is rejected T04 "exceeded maximum balance." (ilp-connector's
  words, which its alert middleware matches), its data a JSON object with the amounts;
- an outgoing Prepare is held (OFAP) while in flight; one that would take the balance minus what
  is held below `minimum` is refused here, before it is sent, with a T04 Reject saying
  "insufficient funds. oldBalance=... proposedBalance=..." (ilp-connector's words);
- a Fulfill moves the held amount into the balance in one transaction; a Reject releases it.

Packet ids: ILPv4 has none on the wire, and a BTP request id changes with every retry and
reconnect. A packet's key is its expiry in ILPv4's 17 digits followed by base64url(SHA-256(its
Prepare re-encoded)): both peers compute it from the decoded Prepare alone, an identical Prepare
sent again gets the same key (so it is answered as before and never counted twice), and two
different Prepares never share one. The expiry leads so that packets sent about the same time
have neighbouring keys: a durable store's index then grows at its end instead of in a random
page per packet, which is a third of the pages each commit writes (bench/RESULTS.md).

Packets in flight across a crash or a dropped link: the sender decides (as on v1, see
docs/reliability.md). A Prepare we sent whose answer we did not get stays held; while the link is
up we ask the peer what it did with it (side protocol `ilp_paychan_trustline`, JSON): fulfilled
(we take the fulfillment if it matches the condition), rejected or never seen (released; a peer
that never saw it records it as rejected, so a late copy is refused), or still being answered
(asked again). At its expiry we release it and tell the peer, which rolls back a fulfilment it
made too late, until the peer acknowledges. A peer that does not speak the side protocol (a JS
ilp-plugin-btp) is not asked: an unanswered Prepare is released at its expiry, as ILPv4 does.
After a restart: incoming Prepares held past their expiry are released at once; outgoing ones
are asked about as above.

Money: each Transfer carries `ilp_paychan_money` (JSON `{"id", "claim"}`); the id makes a
retried Transfer idempotent at a peer of ours. A settlement is decided durably (a prepared
record) before it is sent, and is sent again after a timeout or a restart until the peer answers;
a refusal (a BTP Error other than T..) drops it. A second log under `<storeKey>--money` keeps the
cumulative money sent and received, which a payment-channel module turns into claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from ilp_paychan.codec.btp import ContentType, ProtocolData
from ilp_paychan.codec.condition import b64url_decode, b64url_encode
from ilp_paychan.codec.ilp4 import (
    IlpFulfill,
    IlpPrepare,
    IlpReject,
    decode_fulfill,
    encode_fulfill,
    encode_prepare,
    encode_reject,
)
from ilp_paychan.codec.oer import encode_interledger_time
from ilp_paychan.errors import (
    AlreadyFulfilledError,
    AlreadyRolledBackError,
    DuplicateIdError,
    NotAcceptedError,
    NotConnectedError,
    PeerError,
    TransferNotFoundError,
    UnreachableError,
)
from ilp_paychan.ledger import Backend, PrepareOutcome, TransferLog, open_backend
from ilp_paychan.ledger.packet_memory import PacketMemoryStore
from ilp_paychan.ledger.store_url import is_memory_url
from ilp_paychan.plugin.retention import prune_interval
from ilp_paychan.v2.trustline_options import TrustlineSettings

log = logging.getLogger("ilp_paychan.v2.trustline")

#: The side protocol two trustlines use to agree on packets whose answer was lost.
SIDE_PROTOCOL: Final = "ilp_paychan_trustline"
#: The protocol data entry of a Transfer: its id (and a module's claim).
MONEY_PROTOCOL: Final = "ilp_paychan_money"
#: Ids of money records start with this (packet keys are base64url, which has no ":").
MONEY_PREFIX: Final = "money:"
#: ilp-connector's text for an incoming Prepare over the maximum (its alert middleware matches it).
MAXIMUM_MESSAGE: Final = "exceeded maximum balance."
#: How often held packets, pending settlements and unanswered questions are looked at (s).
MAINTENANCE_INTERVAL: Final = 0.5
#: A peer tells its verdicts on packets within this long of the link coming up (seconds): a
#: settled packet is forgotten only while the link has been up that long (or the retention,
#: if shorter), so a verdict delayed by an outage still finds the packet it is about.
LINK_SETTLE_TIME: Final = 60.0
_MAX_MONEY_ID: Final = 100

_RETRY: ContextVar[_Money | None] = ContextVar("ilp_paychan_trustline_retry", default=None)


def packet_key(prepare: IlpPrepare) -> str:
    """The stable key of an ILPv4 Prepare in flight: its expiry (17 digits), then base64url of
    SHA-256 of its encoding (60 characters; keys sort by expiry, see the module docstring)."""
    return _key_and_expiry(prepare)[0]


def expiry_text(moment: datetime) -> str:
    """An expiry as the ledger stores it: ISO 8601 UTC with milliseconds (ILPv4's precision)."""
    return _iso_of_digits(encode_interledger_time(moment).decode("ascii"))


def _iso_of_digits(digits: str) -> str:
    """`YYYYMMDDHHmmssfff` as `YYYY-MM-DDTHH:mm:ss.fffZ`."""
    return (
        f"{digits[:4]}-{digits[4:6]}-{digits[6:8]}T{digits[8:10]}:{digits[10:12]}:"
        f"{digits[12:14]}.{digits[14:17]}Z"
    )


def _key_and_expiry(prepare: IlpPrepare) -> tuple[str, str]:
    """`packet_key` and `expiry_text` of a Prepare from one encoding: the expiry's 17 digits are
    read back from it, after the type, the length determinant and the 8-byte amount."""
    encoded = encode_prepare(prepare)
    length = encoded[1]
    start = 10 if length < 0x80 else 10 + (length & 0x7F)
    digits = encoded[start : start + 17].decode("ascii")
    return digits + b64url_encode(hashlib.sha256(encoded).digest()), _iso_of_digits(digits)


def _parse_expiry(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(slots=True)
class _Money:
    id: str
    amount: int


@dataclass(slots=True)
class _Unresolved:
    """An outgoing Prepare whose answer we do not know (lost, timed out, left by a crash)."""

    amount: int
    expires: str
    expires_at: datetime
    condition: str


class Trustline:
    """The `Accounting` a `BtpPlugin` gets from its `balance`/`store` options.

    Read it with `await get_balance()` (via `plugin.accounting`). It opens its store in the
    plugin's `connect()` and closes it in `disconnect()`.
    """

    def __init__(self, settings: TrustlineSettings) -> None:
        self.settings = settings
        self._balance = settings.balance
        self._module = settings.settlement
        self._backend: Backend | None = None
        self._log: TransferLog | None = None
        self._money: TransferLog | None = None
        self._plugin: Any = None
        self._address = ""
        #: Incoming Prepares being answered; an Event only once an identical one waits.
        self._handling: dict[str, asyncio.Event | None] = {}
        #: The key of each Prepare between its `*_prepare` and `*_settled` hooks (by the object,
        #: kept alive by the entry so its id cannot be reused), so it is hashed once per packet.
        self._keys: dict[int, tuple[IlpPrepare, str]] = {}
        self._sending: set[str] = set()
        self._unresolved: dict[str, _Unresolved] = {}
        self._tell: dict[str, _Unresolved] = {}
        self._leftovers = False
        self._money_pending = False
        self._peer_reconciles: bool | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._money_in: asyncio.Lock | None = None
        self._money_out: asyncio.Lock | None = None
        self._out_current: _Money | None = None
        self._settle_after = 0.0
        self._settle_backoff = 0.25
        self._observers: list[Any] = []
        #: Loop time the link last came up (None while it is down).
        self._up_since: float | None = None
        #: The latest instant a pruning pass forgot packets that expired before: a Prepare
        #: expiring before it is refused as expired whatever the clock says (set back).
        self._pruned_before: datetime | None = None

    # ------------------------------------------------------------------ reading

    @property
    def transfer_log(self) -> TransferLog:
        """The TransferLog of the balance (open only between connect and disconnect)."""
        if self._log is None:
            raise NotConnectedError("the trustline's store is open only while connected")
        return self._log

    async def get_balance(self) -> dict[str, str]:
        """The balance (ours: positive when the peer owes us) and what is held, as decimal text:
        `balance`, `incomingPrepared` (held for the peer's Prepares and our pending
        settlements), `outgoingPrepared`, `moneySent`, `moneyReceived`."""
        main = self.transfer_log
        money = self._money
        assert money is not None
        incoming = int(await main.get_incoming_fulfilled())
        outgoing = int(await main.get_outgoing_fulfilled())
        ifap = int(await main.get_incoming_fulfilled_and_prepared())
        ofap = int(await main.get_outgoing_fulfilled_and_prepared())
        return {
            "balance": str(incoming - outgoing),
            "incomingPrepared": str(ifap - incoming),
            "outgoingPrepared": str(ofap - outgoing),
            "moneySent": await money.get_incoming_fulfilled(),
            "moneyReceived": await money.get_outgoing_fulfilled(),
        }

    def add_observer(self, observer: Any) -> None:
        """Call `observer.balance(value: int)` whenever a change moved the balance."""
        self._observers.append(observer)

    async def _publish(self) -> None:
        if not self._observers or self._log is None:
            return
        value = int(await self._log.get_balance())
        for observer in self._observers:
            callback = getattr(observer, "balance", None)
            if callable(callback):
                try:
                    callback(value)
                except Exception:
                    log.exception("balance observer raised")

    # ------------------------------------------------------------------ lifecycle

    async def open(self, plugin: Any) -> None:
        """Open the store, release what expired while we were down, start the maintenance."""
        self._plugin = plugin
        self._address = plugin.settings.address
        self._wake = asyncio.Event()
        self._money_in = asyncio.Lock()
        self._money_out = asyncio.Lock()
        store = self.settings.store
        backend = self._backend = (
            Backend(PacketMemoryStore()) if is_memory_url(store) else await open_backend(store)
        )
        key = self.settings.store_key
        limits = self._balance
        self._log = backend.get_transfer_log(
            key,
            maximum=None if limits is None else limits.maximum,
            minimum=None if limits is None else limits.minimum,
        )
        self._money = backend.get_transfer_log(f"{key}--money")
        opener = getattr(self._module, "open", None)
        if callable(opener):
            await opener(backend)
        await self._recover()
        self._up_since = asyncio.get_running_loop().time() if plugin.is_connected() else None
        plugin.on("connect", self._on_link_up)
        plugin.on("disconnect", self._on_link_down)
        self._task = asyncio.create_task(self._maintain(), name="trustline maintenance")

    async def close(self) -> None:
        """Stop the maintenance and close the store (what is held stays held, durably)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if self._plugin is not None:
            self._plugin.off("connect", self._on_link_up)
            self._plugin.off("disconnect", self._on_link_down)
        closer = getattr(self._module, "close", None)
        if callable(closer):
            try:
                await closer()
            except Exception:
                log.exception("the settlement module failed to close")
        backend, self._backend = self._backend, None
        self._log = self._money = None
        self._unresolved.clear()
        self._tell.clear()
        self._sending.clear()  # re-read from the store by the next open()
        self._keys.clear()
        if backend is not None:
            await backend.close()

    def _on_link_up(self, *_: Any) -> None:
        self._peer_reconciles = None
        self._up_since = asyncio.get_running_loop().time()
        self._kick()

    def _on_link_down(self, *_: Any) -> None:
        self._up_since = None

    def _expired(self, expires_at: datetime) -> bool:
        """Whether a Prepare is past its expiry, or expires before packets already forgotten."""
        if expires_at <= datetime.now(UTC):
            return True
        pruned = self._pruned_before
        return pruned is not None and expires_at <= pruned

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _recover(self) -> None:
        main = self.transfer_log
        now = datetime.now(UTC)
        for record in await main.list_prepared():
            transfer = record["transfer"]
            ident = transfer["id"]
            if ident.startswith(MONEY_PREFIX):
                if record["isIncoming"]:
                    self._money_pending = True
                continue
            expires = _parse_expiry(transfer["expiresAt"])
            if record["isIncoming"]:
                if expires <= now:
                    with contextlib.suppress(AlreadyFulfilledError):
                        await main.cancel(ident)
                else:
                    self._leftovers = True
            else:
                self._unresolved[ident] = _Unresolved(
                    int(transfer["amount"]),
                    transfer["expiresAt"],
                    expires,
                    transfer.get("executionCondition", ""),
                )
        for record in await main.list_peer_notices():
            transfer = record["transfer"]
            if record["isIncoming"] or transfer["id"].startswith(MONEY_PREFIX):
                continue
            self._tell[transfer["id"]] = _Unresolved(
                int(transfer["amount"]), transfer["expiresAt"], now, ""
            )

    # ------------------------------------------------------------------ incoming packets

    def _reject(self, code: str, message: str, data: bytes = b"") -> bytes:
        return encode_reject(IlpReject(code, self._address, message, data))

    def _remember(self, prepare: IlpPrepare, key: str) -> None:
        self._keys[id(prepare)] = (prepare, key)

    def _key_of(self, prepare: IlpPrepare) -> str:
        """The key `_remember`ed for this very Prepare object (forgotten now), else hashed."""
        entry = self._keys.pop(id(prepare), None)
        if entry is not None and entry[0] is prepare:
            return entry[1]
        return packet_key(prepare)

    async def incoming_prepare(self, prepare: IlpPrepare) -> bytes | None:
        """Hold the amount, or refuse it: T04 over the maximum; an identical Prepare already
        answered gets that answer again (a Fulfill with the stored fulfillment, or an F00)."""
        amount = prepare.amount
        if amount == 0:
            return None
        if self._expired(prepare.expires_at):
            return self._reject("R00", "the Prepare expired before we could hold its amount")
        key, expires = _key_and_expiry(prepare)
        record = {"id": key, "amount": str(amount), "expiresAt": expires}
        main = self.transfer_log
        try:
            outcome = await main.prepare(record, True)
        except NotAcceptedError:
            return await self._over_maximum(amount)
        except DuplicateIdError:
            return self._reject("F00", "this Prepare's key is in use by a Prepare we sent")
        except BaseException:
            self._leftovers = True  # it may be stored: released at its expiry
            raise
        handling = self._handling
        if outcome is PrepareOutcome.NEW or (
            outcome is PrepareOutcome.REPEAT_PREPARED and key not in handling
        ):
            handling[key] = None
            self._remember(prepare, key)
            return None
        if outcome is PrepareOutcome.REPEAT_PREPARED:
            running = handling[key]
            if running is None:
                running = handling[key] = asyncio.Event()
            left = (prepare.expires_at - datetime.now(UTC)).total_seconds()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(left, 0.0)):
                    await running.wait()
        return await self._answer_again(key)

    async def _answer_again(self, key: str) -> bytes:
        """The answer already given to an identical Prepare (or R00 if it is still undecided)."""
        found = await self.transfer_log.get(key)
        if found["state"] == "fulfilled":
            return encode_fulfill(IlpFulfill(b64url_decode(found["fulfillment"]), b""))
        if found["state"] == "cancelled":
            return self._reject("F00", "an identical Prepare was already rejected")
        return self._reject("R00", "an identical Prepare is still being answered")

    async def _over_maximum(self, amount: int) -> bytes:
        main = self.transfer_log
        held = int(await main.get_incoming_fulfilled_and_prepared()) - int(
            await main.get_outgoing_fulfilled()
        )
        limits = self._balance
        maximum = "Infinity" if limits is None or limits.maximum is None else str(limits.maximum)
        data = json.dumps(
            {"balance": str(held), "amount": str(amount), "maximum": maximum},
            separators=(",", ":"),
        ).encode()
        log.info(
            "incoming Prepare of %d refused: balance with held %d, maximum %s",
            amount,
            held,
            maximum,
        )
        return self._reject("T04", MAXIMUM_MESSAGE, data)

    async def incoming_settled(self, prepare: IlpPrepare, reply: bytes, fulfilled: bool) -> None:
        """Move the held amount into the balance (Fulfill) or release it (Reject): one
        transaction. Raises AlreadyRolledBackError when the sender cancelled it meanwhile."""
        if prepare.amount == 0:
            return
        key = self._key_of(prepare)
        main = self.transfer_log
        try:
            if fulfilled:
                fulfillment = decode_fulfill(reply).fulfillment
                await main.fulfill(key, b64url_encode(fulfillment))
            else:
                with contextlib.suppress(AlreadyFulfilledError):
                    await main.cancel(key)
        except BaseException:
            self._leftovers = True  # still held: released at its expiry
            raise
        finally:
            done = self._handling.pop(key, None)
            if done is not None:
                done.set()
        if fulfilled:
            await self._publish()

    # ------------------------------------------------------------------ outgoing packets

    async def outgoing_prepare(self, prepare: IlpPrepare) -> bytes | None:
        """Hold the amount before sending, or refuse locally: T04 below the minimum, R00 if it
        has expired (before it is looked up: its record may be forgotten, and an expired one
        must never be held again)."""
        amount = prepare.amount
        if amount == 0:
            return None
        if self._expired(prepare.expires_at):
            return self._reject("R00", "the Prepare expired before it was sent")
        key, expires = _key_and_expiry(prepare)
        record = {
            "id": key,
            "amount": str(amount),
            "expiresAt": expires,
            "executionCondition": b64url_encode(prepare.execution_condition),
        }
        main = self.transfer_log
        try:
            outcome = await main.prepare(record, False)
        except NotAcceptedError:
            return await self._below_minimum(amount)
        except DuplicateIdError:
            return self._reject("F00", "this Prepare's key is in use by a Prepare we received")
        except BaseException:
            # Cancelled while storing: it may be held, so it is resolved like a lost answer.
            self._unresolved[key] = _Unresolved(
                amount, record["expiresAt"], prepare.expires_at, record["executionCondition"]
            )
            raise
        if outcome in (PrepareOutcome.NEW, PrepareOutcome.REPEAT_PREPARED):
            self._unresolved.pop(key, None)
            self._sending.add(key)
            self._remember(prepare, key)
            return None
        return await self._answer_again(key)

    async def _below_minimum(self, amount: int) -> bytes:
        main = self.transfer_log
        old = int(await main.get_incoming_fulfilled()) - int(
            await main.get_outgoing_fulfilled_and_prepared()
        )
        limits = self._balance
        minimum = "-Infinity" if limits is None or limits.minimum is None else str(limits.minimum)
        data = json.dumps(
            {"balance": str(old), "amount": str(amount), "minimum": minimum},
            separators=(",", ":"),
        ).encode()
        return self._reject(
            "T04", f"insufficient funds. oldBalance={old} proposedBalance={old - amount}", data
        )

    async def outgoing_settled(
        self, prepare: IlpPrepare, reply: bytes, fulfilled: bool, answered: bool
    ) -> bytes | None:
        """Fulfill: move the balance (and maybe settle). The peer's Reject: release. No answer:
        keep it held and find out (see the module docstring). A Fulfill for a Prepare already
        released (at its expiry, by another process on the store) was not counted: the caller
        gets an R00 Reject instead, never a Fulfill the balance does not show."""
        amount = prepare.amount
        if amount == 0:
            return None
        key = self._key_of(prepare)
        self._sending.discard(key)
        main = self.transfer_log
        if fulfilled:
            fulfillment = decode_fulfill(reply).fulfillment
            try:
                await main.fulfill(key, b64url_encode(fulfillment))
            except AlreadyRolledBackError:
                log.warning("a Fulfill arrived for Prepare %s after we released it", key)
                return self._reject("R00", "the Prepare was released before its Fulfill arrived")
            self._kick()
            await self._publish()
        elif answered:
            with contextlib.suppress(AlreadyFulfilledError):
                await main.cancel(key)
        else:
            self._unresolved[key] = _Unresolved(
                amount,
                expiry_text(prepare.expires_at),
                prepare.expires_at,
                b64url_encode(prepare.execution_condition),
            )
            self._kick()
        return None

    # ------------------------------------------------------------------ money

    async def incoming_money(
        self, amount: int, protocol_data: tuple[ProtocolData, ...]
    ) -> bool | None:
        """Count money the peer sent (the balance drops); a repeat of a Transfer already
        counted returns False (the money handler is not told again). Raises NotAcceptedError
        when it would pass `minimum` or the module refuses its claim."""
        body = _json_entry(protocol_data, MONEY_PROTOCOL)
        ident = body.get("id")
        if (
            not isinstance(ident, str)
            or not ident.startswith(MONEY_PREFIX)
            or len(ident) > _MAX_MONEY_ID
        ):
            ident = MONEY_PREFIX + uuid.uuid4().hex
        record = {"id": ident, "amount": str(amount)}
        main, money = self.transfer_log, self._money
        assert money is not None
        assert self._money_in is not None
        async with self._money_in:
            outcome = await main.prepare(record, False)
            if outcome is PrepareOutcome.REPEAT_FULFILLED:
                return False
            if outcome is PrepareOutcome.REPEAT_CANCELLED:
                raise NotAcceptedError(f"Transfer {ident} was refused before")
            counted = await money.prepare(record, False)
            if counted is not PrepareOutcome.REPEAT_FULFILLED:
                if self._module is not None:
                    total = int(await money.get_outgoing_fulfilled()) + amount
                    try:
                        await self._module.check_claim(body.get("claim"), total)
                    except Exception as exc:
                        await money.cancel(ident)
                        await main.cancel(ident)
                        raise NotAcceptedError(f"the settlement claim was refused: {exc}") from exc
                await money.fulfill(ident, "received")
            await main.fulfill(ident, "received")
        await self._publish()
        return None

    async def outgoing_money(self, amount: int) -> tuple[ProtocolData, ...]:
        """Decide the payment durably (held against `maximum`), then return its id and claim.

        One Transfer at a time: the lock taken here is released by `money_sent` or
        `money_failed`, so cumulative claims go out in order.
        """
        lock = self._money_out
        assert lock is not None
        await lock.acquire()
        try:
            current = _RETRY.get()
            if current is None or current.amount != amount:
                current = _Money(MONEY_PREFIX + uuid.uuid4().hex, amount)
            record = {"id": current.id, "amount": str(amount)}
            try:
                await self.transfer_log.prepare(record, True)
            except NotAcceptedError:
                raise NotAcceptedError(
                    f"paying {amount} would take the balance above balance.maximum"
                ) from None
            money = self._money
            assert money is not None
            await money.prepare(record, True)
            body: dict[str, Any] = {"id": current.id}
            if self._module is not None:
                total = int(await money.get_incoming_fulfilled()) + amount
                claim = await self._module.create_claim(total)
                if claim is not None:
                    body["claim"] = claim
            self._out_current = current
            return (
                ProtocolData(
                    MONEY_PROTOCOL,
                    ContentType.APPLICATION_JSON,
                    json.dumps(body, separators=(",", ":")).encode(),
                ),
            )
        except BaseException:
            lock.release()
            raise

    async def money_sent(self, amount: int) -> None:
        """The peer accepted our Transfer: the balance rises by `amount`."""
        current, self._out_current = self._out_current, None
        try:
            if current is not None:
                await self.transfer_log.fulfill(current.id, "sent")
                assert self._money is not None
                await self._money.fulfill(current.id, "sent")
        finally:
            self._release_out()
        await self._publish()
        self._kick()

    async def money_failed(self, amount: int, exc: BaseException) -> None:
        """Our Transfer failed: nothing sent or refused -> dropped; no answer (it may have
        arrived) or a temporary refusal -> kept and sent again later with the same id."""
        current, self._out_current = self._out_current, None
        try:
            if current is None:
                return
            final = isinstance(exc, UnreachableError | NotConnectedError) or (
                isinstance(exc, PeerError) and not str(getattr(exc, "code", "")).startswith("T")
            )
            if not isinstance(exc, Exception):
                final = False
            if final:
                await self.transfer_log.cancel(current.id)
                assert self._money is not None
                await self._money.cancel(current.id)
            else:
                self._money_pending = True
        finally:
            self._release_out()

    def _release_out(self) -> None:
        lock = self._money_out
        if lock is not None and lock.locked():
            lock.release()

    # ------------------------------------------------------------------ side protocol

    async def side_message(
        self, protocol_data: tuple[ProtocolData, ...]
    ) -> tuple[ProtocolData, ...] | None:
        """Answer the peer's question about a Prepare it sent us (`status`), or its verdict
        that one is cancelled (`cancelled`); None when the Message is not ours."""
        if not any(entry.protocol_name == SIDE_PROTOCOL for entry in protocol_data):
            return None
        body = _json_entry(protocol_data, SIDE_PROTOCOL)
        op, ident = body.get("op"), body.get("id")
        amount, expires = body.get("amount"), body.get("expiresAt")
        if (
            op not in ("status", "cancelled")
            or not isinstance(ident, str)
            or not 0 < len(ident) <= 64
            or ident.startswith(MONEY_PREFIX)
            or not isinstance(amount, str)
            or not amount.isdigit()
            or not isinstance(expires, str)
        ):
            raise NotAcceptedError(f"malformed {SIDE_PROTOCOL} message")
        record = {"id": ident, "amount": amount, "expiresAt": expires}
        if op == "status":
            answer = await self._status(record)
        else:
            answer = await self._peer_cancelled(record)
        return (
            ProtocolData(
                SIDE_PROTOCOL,
                ContentType.APPLICATION_JSON,
                json.dumps(answer, separators=(",", ":")).encode(),
            ),
        )

    async def _find(self, ident: str) -> dict[str, Any] | None:
        try:
            return await self.transfer_log.get(ident)
        except TransferNotFoundError:
            return None

    async def _tombstone(self, record: dict[str, str]) -> None:
        """Record a Prepare we never saw as rejected, so a late copy of it is refused."""
        main = self.transfer_log
        try:
            await main.prepare(record, True)
        except (NotAcceptedError, DuplicateIdError):
            return
        with contextlib.suppress(AlreadyFulfilledError):
            await main.cancel(record["id"])

    async def _status(self, record: dict[str, str]) -> dict[str, str]:
        found = await self._find(record["id"])
        if found is None or not found["isIncoming"]:
            if found is None:
                await self._tombstone(record)
            return {"state": "cancelled"}
        if found["state"] == "fulfilled":
            return {"state": "fulfilled", "fulfillment": found["fulfillment"]}
        if found["state"] == "prepared":
            # Not ours to decide before its expiry: we may be about to answer it (its record
            # is committed a moment before we note that we handle it), or another process on
            # this store key is answering it. One left by a crash is released at its expiry.
            expires = _parse_expiry(found["transfer"]["expiresAt"])
            if record["id"] in self._handling or expires > datetime.now(UTC):
                return {"state": "pending"}
            with contextlib.suppress(AlreadyFulfilledError):
                await self.transfer_log.cancel(record["id"])
            return await self._status(record)
        return {"state": "cancelled"}

    async def _peer_cancelled(self, record: dict[str, str]) -> dict[str, str]:
        main = self.transfer_log
        found = await self._find(record["id"])
        if found is None:
            await self._tombstone(record)
        elif found["isIncoming"]:
            if found["state"] == "prepared":
                with contextlib.suppress(AlreadyFulfilledError):
                    await main.cancel(record["id"])
                found = await self._find(record["id"])
            if found is not None and found["state"] == "fulfilled":
                await main.revert_fulfillment(record["id"])
                log.warning(
                    "the peer cancelled Prepare %s at its expiry after we fulfilled it: rolled"
                    " back",
                    record["id"],
                )
                await self._publish()
        return {"state": "cancelled"}

    async def _ask(self, body: dict[str, str]) -> dict[str, Any] | None:
        """The peer's answer in the side protocol; None when it does not speak it. Raises on
        a temporary failure (no link, no answer in time, a T.. error)."""
        request = getattr(self._plugin, "request_side_protocol", None)
        if request is None:
            return None
        try:
            answer = await request(
                ProtocolData(
                    SIDE_PROTOCOL,
                    ContentType.APPLICATION_JSON,
                    json.dumps(body, separators=(",", ":")).encode(),
                )
            )
        except PeerError as exc:
            if str(getattr(exc, "code", "")).startswith("T"):
                raise
            self._peer_reconciles = False
            return None
        if answer is None:
            self._peer_reconciles = False
            return None
        self._peer_reconciles = True
        try:
            parsed = json.loads(answer)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None

    # ------------------------------------------------------------------ maintenance

    async def _maintain(self) -> None:
        """Release, ask, tell and settle, whenever kicked and every MAINTENANCE_INTERVAL."""
        wake = self._wake
        assert wake is not None
        loop = asyncio.get_running_loop()
        retention = self.settings.settled_retention
        every = prune_interval(retention)
        next_prune = loop.time() + every
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(MAINTENANCE_INTERVAL):
                    await wake.wait()
            wake.clear()
            try:
                await self._release_leftovers()
                await self._resolve()
                if self._plugin.is_connected():
                    await self._settle()
                if loop.time() >= next_prune:
                    next_prune = loop.time() + every
                    await self._prune(retention)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                log.warning("trustline maintenance failed (will retry): %r", exc)
                await asyncio.sleep(min(0.1 * 2**failures, 5.0))

    async def _prune(self, retention: float) -> int:
        """Forget settled packets that expired more than `retention` seconds ago, if the link
        has been up long enough for the peer's verdicts on them to have arrived; how many."""
        up = self._up_since
        settle = min(retention, LINK_SETTLE_TIME)
        if up is None or asyncio.get_running_loop().time() - up < settle:
            return 0
        cutoff = datetime.now(UTC) - timedelta(seconds=retention)
        if self._pruned_before is None or cutoff > self._pruned_before:
            self._pruned_before = cutoff  # raised before anything is forgotten
        return await self.transfer_log.prune_settled(cutoff)

    async def _release_leftovers(self) -> None:
        """Incoming Prepares left held by an earlier process are released at their expiry."""
        if not self._leftovers:
            return
        main = self.transfer_log
        remaining = False
        now = datetime.now(UTC)
        for record in await main.list_prepared():
            ident = record["transfer"]["id"]
            if not record["isIncoming"] or ident.startswith(MONEY_PREFIX):
                continue
            if ident in self._handling:
                continue
            if _parse_expiry(record["transfer"]["expiresAt"]) <= now:
                with contextlib.suppress(AlreadyFulfilledError):
                    await main.cancel(ident)
            else:
                remaining = True
        self._leftovers = remaining

    async def _resolve(self) -> None:
        """Settle outgoing Prepares whose answer we do not know, and deliver our verdicts."""
        main = self.transfer_log
        connected = self._plugin.is_connected()
        for key, item in list(self._unresolved.items()):
            if key in self._sending:
                continue
            if item.expires_at <= datetime.now(UTC):
                tell = self._peer_reconciles is not False
                try:
                    await main.cancel(key, notify_peer=tell)
                except (AlreadyFulfilledError, TransferNotFoundError):
                    tell = False
                self._unresolved.pop(key, None)
                if tell:
                    self._tell[key] = item
                continue
            if not connected or self._peer_reconciles is False:
                continue
            answer = await self._ask(
                {"op": "status", "id": key, "amount": str(item.amount), "expiresAt": item.expires}
            )
            if answer is None:
                continue
            state = answer.get("state")
            if state == "fulfilled":
                fulfillment = answer.get("fulfillment")
                if not isinstance(fulfillment, str) or not _fulfils(fulfillment, item.condition):
                    log.warning("the peer's fulfillment of Prepare %s does not match", key)
                    continue
                with contextlib.suppress(AlreadyRolledBackError, TransferNotFoundError):
                    await main.fulfill(key, fulfillment)
                self._unresolved.pop(key, None)
                self._kick()
                await self._publish()
            elif state == "cancelled":
                with contextlib.suppress(AlreadyFulfilledError, TransferNotFoundError):
                    await main.cancel(key)
                self._unresolved.pop(key, None)
        if not connected:
            return
        for key, item in list(self._tell.items()):
            answer = await self._ask(
                {
                    "op": "cancelled",
                    "id": key,
                    "amount": str(item.amount),
                    "expiresAt": item.expires,
                }
            )
            if answer is None or answer.get("state") == "cancelled":
                await main.clear_peer_notice(key)
                self._tell.pop(key, None)

    async def _settle(self) -> None:
        """Send decided settlements again; then settle if the balance is below the threshold."""
        main = self.transfer_log
        if self._money_pending:
            self._money_pending = False
            for record in await main.list_prepared():
                transfer = record["transfer"]
                if record["isIncoming"] and transfer["id"].startswith(MONEY_PREFIX):
                    await self._send_money(_Money(transfer["id"], int(transfer["amount"])))
            if self._money_pending:
                return
        limits = self._balance
        if limits is None or limits.settle_threshold is None:
            return
        balance = int(await main.get_balance())
        if not limits.settle_threshold > balance:
            return
        amount = limits.settle_to - balance
        if limits.maximum is not None:
            held = int(await main.get_incoming_fulfilled_and_prepared()) - int(
                await main.get_outgoing_fulfilled()
            )
            amount = min(amount, limits.maximum - held)
        if amount <= 0:
            return
        log.debug("settling %d (balance %d below %d)", amount, balance, limits.settle_threshold)
        await self._send_money(_Money("", amount))

    async def _send_money(self, money: _Money) -> None:
        """Send one settlement (`money.id` set: the decided one again); failures back off."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._settle_after:
            self._money_pending = self._money_pending or bool(money.id)
            return
        token = _RETRY.set(money if money.id else None)
        try:
            await self._plugin.send_money(str(money.amount))
        except Exception as exc:
            self._settle_backoff = min(self._settle_backoff * 2, 60.0)
            self._settle_after = loop.time() + self._settle_backoff
            log.warning(
                "settlement of %d failed (next try in %.1f s): %r",
                money.amount,
                self._settle_backoff,
                exc,
            )
            report = getattr(self._plugin, "_error", None)
            if callable(report):
                report(exc)
        else:
            self._settle_backoff = 0.25
            self._settle_after = 0.0
        finally:
            _RETRY.reset(token)


def _fulfils(fulfillment: str, condition: str) -> bool:
    try:
        return b64url_encode(hashlib.sha256(b64url_decode(fulfillment)).digest()) == condition
    except ValueError:
        return False


def _json_entry(protocol_data: tuple[ProtocolData, ...], name: str) -> dict[str, Any]:
    """The last entry called `name` as a JSON object ({} when absent or not an object)."""
    raw = None
    for entry in protocol_data:
        if entry.protocol_name == name:
            raw = entry.data
    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}
