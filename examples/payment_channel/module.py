"""Unconditional-payment settlement: pay the peer on a ledger what the trustline says we owe.

Use it as the module of `make_payment_channel_plugin`:

    import payment_channel.module
    PluginPaymentChannel = make_payment_channel_plugin(payment_channel.module)
    plugin = PluginPaymentChannel({..., "store": "sqlite:///a.db", "ledgerPath": "/var/lib/bank",
                                   "ledgerAccount": "alice", "peerLedgerAccount": "bob",
                                   "maxUnsecured": "1000"})

How it secures the trustline:
- As payer, `create_outgoing_claim(ctx, outgoing_balance)` pays only the difference between what
  we owe in all (`outgoing_balance`) and what we have already paid (a MaxValueTracker in the
  store), and hands the peer the payment's txid as the "claim".
- As payee, `handle_incoming_claim` looks the txid up on the ledger and records the payment in a
  second TransferLog keyed by txid, so a txid counts once however often it is announced; and
  `handle_incoming_prepare` refuses a transfer that would leave more than `maxUnsecured` unpaid.
- Nothing is lost across a restart: on connect the payer takes the ledger's word for what it has
  paid (a crash after paying but before recording), pays what is still owed, and announces every
  payment the peer may not have heard of; the payee re-reads the ledger for payments to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from ilp_paychan.errors import InvalidFieldsError, NotAcceptedError, PeerError
from payment_channel.ledger import PaymentLedger

plugin_name = "payment-channel"

ANNOUNCE_METHOD = "paychan_payment"
ANNOUNCE_ATTEMPTS = 40


def _text_option(opts: Mapping[str, Any], key: str) -> str:
    value = opts.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidFieldsError(f"option {key} must be a non-empty string, got {value!r}")
    return value


def constructor(ctx: Any, opts: Mapping[str, Any]) -> None:
    s = ctx.state
    s.ledger = PaymentLedger(_text_option(opts, "ledgerPath"))
    s.own = _text_option(opts, "ledgerAccount")
    s.peer = _text_option(opts, "peerLedgerAccount")
    prefix = _text_option(opts, "prefix")
    max_unsecured = opts.get("maxUnsecured")
    if isinstance(max_unsecured, int) and not isinstance(max_unsecured, bool):
        max_unsecured = str(max_unsecured)
    if not isinstance(max_unsecured, str) or not max_unsecured.isdigit():
        raise InvalidFieldsError(
            f"option maxUnsecured must be a non-negative integer, got {max_unsecured!r}"
        )
    s.max_unsecured = int(max_unsecured)
    s.prefix = prefix
    info_option = opts.get("info")
    given: Mapping[str, Any] = info_option if isinstance(info_option, Mapping) else {}
    s.info = {
        "prefix": prefix,
        "currencyCode": given.get("currencyCode", "XPY"),
        "currencyScale": given.get("currencyScale", 2),
        "connectors": list(given.get("connectors", [])),
    }
    s.auth_token = opts.get("authToken")
    s.incoming_settlements = ctx.backend.get_transfer_log("incoming_settlements")
    s.amount_settled = ctx.backend.get_max_value_tracker("amount_settled")
    s.paying = asyncio.Lock()
    s.announcer = None
    ctx.rpc.add_method(ANNOUNCE_METHOD, lambda claim: _record_payment(ctx, claim))


def get_auth_token(ctx: Any) -> str | None:
    token: str | None = ctx.state.auth_token
    return token


def get_info(ctx: Any) -> dict[str, Any]:
    info: dict[str, Any] = ctx.state.info
    return info


def get_account(ctx: Any) -> str:
    return f"{ctx.state.prefix}{ctx.state.own}"


def get_peer_account(ctx: Any) -> str:
    return f"{ctx.state.prefix}{ctx.state.peer}"


async def connect(ctx: Any) -> None:
    """Catch up with the ledger in both directions, then announce what we still had to pay."""
    s = ctx.state
    recorded = int((await s.amount_settled.get_max())["value"])
    unannounced: list[dict[str, str]] = []
    paid = 0
    for payment in await s.ledger.payments(s.own, s.peer):
        paid += payment.amount
        if paid > recorded:
            unannounced.append({"txid": payment.id})
    if paid > recorded:
        await s.amount_settled.set_if_max({"value": str(paid), "data": None})
    for payment in await s.ledger.payments(s.peer, s.own):
        await _record_payment(ctx, {"txid": payment.id})
    claim = await create_outgoing_claim(ctx, await ctx.transfer_log.get_outgoing_fulfilled())
    if claim is not None:
        unannounced.append(claim)
    if unannounced:
        s.announcer = asyncio.create_task(_announce(ctx, unannounced))


async def disconnect(ctx: Any) -> None:
    announcer = ctx.state.announcer
    if announcer is not None:
        announcer.cancel()
        await asyncio.gather(announcer, return_exceptions=True)
        ctx.state.announcer = None


async def handle_incoming_prepare(ctx: Any, transfer: Mapping[str, Any]) -> None:
    """Refuse a transfer that would leave more than maxUnsecured not yet paid on the ledger."""
    s = ctx.state
    incoming = int(await ctx.transfer_log.get_incoming_fulfilled_and_prepared())
    received = int(await s.incoming_settlements.get_incoming_fulfilled_and_prepared())
    if incoming - received > s.max_unsecured:
        raise NotAcceptedError(
            f"{transfer.get('id')} exceeds max unsecured balance: {incoming - received} > "
            f"{s.max_unsecured}"
        )


async def create_outgoing_claim(ctx: Any, outgoing_balance: str) -> dict[str, str] | None:
    """Pay what we owe beyond what we already paid; the txid is what the peer gets.

    One payment at a time (the lock), so two Fulfills arriving together never both pay the same
    difference. The ledger reference `settle-to-<total>` makes a retried payment of the same total
    pay nothing twice.
    """
    s = ctx.state
    async with s.paying:
        paid = int((await s.amount_settled.get_max())["value"])
        owed = int(outgoing_balance) - paid
        if owed <= 0:
            return None
        txid = await s.ledger.pay(s.own, s.peer, owed, reference=f"settle-to-{outgoing_balance}")
        await s.amount_settled.set_if_max({"value": outgoing_balance, "data": {"txid": txid}})
    return {"txid": txid}


async def handle_incoming_claim(ctx: Any, claim: Any) -> None:
    await _record_payment(ctx, claim)


async def _record_payment(ctx: Any, claim: Any) -> bool:
    """Count the payment `claim` names, once, if the ledger says the peer paid us that."""
    s = ctx.state
    txid = claim.get("txid") if isinstance(claim, Mapping) else None
    if not isinstance(txid, str) or not txid:
        ctx.log.warning("ignoring a settlement claim without a txid: %r", claim)
        return False
    payment = await s.ledger.get_payment(txid)
    if payment is None or payment.source != s.peer or payment.destination != s.own:
        ctx.log.warning("ignoring txid %s: no payment from %s to %s", txid, s.peer, s.own)
        return False
    await s.incoming_settlements.prepare({"id": txid, "amount": str(payment.amount)}, True)
    await s.incoming_settlements.fulfill(txid, txid)
    return True


async def _announce(ctx: Any, claims: list[dict[str, str]]) -> None:
    """Tell the peer about payments it may not know of, retrying while it is not connected."""
    delay = 0.05
    for _ in range(ANNOUNCE_ATTEMPTS):
        try:
            while claims:
                await ctx.rpc.call(ANNOUNCE_METHOD, ctx.state.prefix, claims[0])
                claims.pop(0)
            return
        except PeerError as exc:
            ctx.log.info("peer refused the payment announcement: %s", exc)
            return
        except Exception as exc:
            ctx.log.debug("payment announcement not possible yet: %r", exc)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)
    ctx.log.warning("gave up announcing %s; the peer finds them on its next connect", claims)
