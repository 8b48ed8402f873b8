"""Claim-based settlement: a unidirectional Ed25519 payment channel per direction.

Use it as the module of `make_payment_channel_plugin`:

    import claim_channel.module
    PluginClaimChannel = make_payment_channel_plugin(claim_channel.module)
    plugin = PluginClaimChannel({..., "store": "sqlite:///a.db", "secret": SEED_HEX,
                                 "peerPublicKey": PEER_HEX, "ledgerPath": "/var/lib/chain",
                                 "channelAmount": "1000000", "maxUnsecured": "1000"})

How it secures the trustline:
- As sender, `connect` locks `channelAmount` in the channel to the peer, and every time the peer
  fulfils one of our transfers `create_outgoing_claim` signs a claim for the whole amount we have
  paid so far (cumulative, so a lost claim is healed by the next one).
- As receiver, `handle_incoming_claim` keeps the best valid claim in a MaxValueTracker (persisted
  in the plugin's store, so it survives a restart), `handle_incoming_prepare` refuses a transfer
  that would leave more than `maxUnsecured` not covered by that claim, and `disconnect` cashes the
  best claim in on the ledger.
- After a (re)connect both sides exchange their latest claims over `ctx.rpc`, so a claim lost with
  a crash (between the Fulfill and its Response) is issued again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from claim_channel.claims import (
    channel_id,
    claim_is_signed_by,
    parse_claim,
    parse_hex32,
    private_key,
    public_bytes,
    sign_claim,
)
from claim_channel.ledger import ChannelLedger
from ilp_paychan.errors import InvalidFieldsError, NotAcceptedError, PeerError

plugin_name = "claim-channel"

LATEST_CLAIM_METHOD = "paychan_latest_claim"
PUSH_CLAIM_METHOD = "paychan_claim"
RESYNC_ATTEMPTS = 40
"""Bounded retries (with backoff up to 0.5 s, about 18 s in all) while the peer is not there yet."""


def _amount_option(opts: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = opts.get(key, default)
    if isinstance(value, bool) or value is None:
        raise InvalidFieldsError(f"option {key} must be a non-negative integer, got {value!r}")
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and value >= 0:
        return value
    raise InvalidFieldsError(f"option {key} must be a non-negative integer, got {value!r}")


def constructor(ctx: Any, opts: Mapping[str, Any]) -> None:
    """Check the options and prepare the state; runs inside the plugin's constructor."""
    s = ctx.state
    try:
        s.key = private_key(opts.get("secret"))
        s.peer_public = parse_hex32(opts.get("peerPublicKey"), "peerPublicKey")
    except ValueError as exc:
        raise InvalidFieldsError(str(exc)) from None
    ledger_path = opts.get("ledgerPath")
    if not isinstance(ledger_path, str) or not ledger_path:
        raise InvalidFieldsError(f"option ledgerPath must be a directory path, got {ledger_path!r}")
    prefix = opts.get("prefix")
    if not isinstance(prefix, str) or not prefix.endswith("."):
        raise InvalidFieldsError(f"option prefix must be an ILP prefix ending in '.': {prefix!r}")
    s.public = public_bytes(s.key)
    s.ledger = ChannelLedger(ledger_path)
    s.outgoing_channel = channel_id(s.public, s.peer_public)
    s.incoming_channel = channel_id(s.peer_public, s.public)
    s.channel_amount = _amount_option(opts, "channelAmount", 0)
    s.max_unsecured = _amount_option(opts, "maxUnsecured")
    s.incoming_capacity = 0
    s.prefix = prefix
    s.account = prefix + s.public.hex()[:16]
    s.peer_account = prefix + s.peer_public.hex()[:16]
    info_option = opts.get("info")
    given: Mapping[str, Any] = info_option if isinstance(info_option, Mapping) else {}
    s.info = {
        "prefix": prefix,
        "currencyCode": given.get("currencyCode", "XCL"),
        "currencyScale": given.get("currencyScale", 6),
        "connectors": list(given.get("connectors", [])),
    }
    s.auth_token = opts.get("authToken")
    s.best_claim = ctx.backend.get_max_value_tracker("incoming_claim")
    s.resync = None
    ctx.rpc.add_method(LATEST_CLAIM_METHOD, lambda _args: _latest_outgoing_claim(ctx))
    ctx.rpc.add_method(PUSH_CLAIM_METHOD, lambda claim: _accept_claim(ctx, claim))


def get_auth_token(ctx: Any) -> str | None:
    token: str | None = ctx.state.auth_token
    return token


def get_info(ctx: Any) -> dict[str, Any]:
    info: dict[str, Any] = ctx.state.info
    return info


def get_account(ctx: Any) -> str:
    account: str = ctx.state.account
    return account


def get_peer_account(ctx: Any) -> str:
    account: str = ctx.state.peer_account
    return account


async def connect(ctx: Any) -> None:
    """Lock our funds in the channel to the peer; re-exchange latest claims in the background."""
    s = ctx.state
    if s.channel_amount > 0:
        await s.ledger.open_channel(s.public, s.peer_public, s.channel_amount)
    s.resync = asyncio.create_task(_resync(ctx))


async def disconnect(ctx: Any) -> None:
    """Fetch the peer's newest claim while we still can, then cash in the best one."""
    s = ctx.state
    if s.resync is not None:
        s.resync.cancel()
        with contextlib.suppress(BaseException):
            await s.resync
        s.resync = None
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2):
            await _pull_latest_claim(ctx)
    best = await s.best_claim.get_max()
    if best.get("data") is None:
        return
    paid = await s.ledger.submit_claim(parse_claim(best["data"]))
    ctx.log.info(
        "submitted claim for %s on channel %s: %d paid out", best["value"], s.incoming_channel, paid
    )


async def handle_incoming_prepare(ctx: Any, transfer: Mapping[str, Any]) -> None:
    """Refuse a transfer that would leave more than maxUnsecured not covered by a claim.

    The plugin has already counted `transfer` in incoming-fulfilled-and-prepared, so this is the
    most the peer could owe us if every prepared transfer were fulfilled.
    """
    s = ctx.state
    incoming = int(await ctx.transfer_log.get_incoming_fulfilled_and_prepared())
    secured = int((await s.best_claim.get_max())["value"])
    if incoming - secured > s.max_unsecured:
        raise NotAcceptedError(
            f"{transfer.get('id')} exceeds max unsecured balance: {incoming - secured} > "
            f"{s.max_unsecured}"
        )


async def create_outgoing_claim(ctx: Any, outgoing_balance: str) -> dict[str, str] | None:
    """A claim for everything we have paid so far (`outgoing_balance` only ever grows)."""
    balance = int(outgoing_balance)
    if balance <= 0:
        return None
    return sign_claim(ctx.state.key, ctx.state.outgoing_channel, balance)


async def handle_incoming_claim(ctx: Any, claim: Any) -> None:
    await _accept_claim(ctx, claim)


async def _accept_claim(ctx: Any, value: Any) -> bool:
    """Keep `value` if it is a valid claim better than the best one; anything else is ignored.

    Stale (smaller) and repeated claims leave the tracker as it is; forged ones never reach it.
    """
    s = ctx.state
    try:
        claim = parse_claim(value)
    except ValueError as exc:
        ctx.log.warning("ignoring malformed claim: %s", exc)
        return False
    if claim.channel != s.incoming_channel:
        ctx.log.warning(
            "ignoring claim for channel %s (ours is %s)", claim.channel, s.incoming_channel
        )
        return False
    if not claim_is_signed_by(s.peer_public, claim):
        ctx.log.warning("ignoring claim for %d with a bad signature", claim.balance)
        return False
    if claim.balance > s.incoming_capacity:
        channel = await s.ledger.get_channel(claim.channel)
        s.incoming_capacity = channel.capacity if channel is not None else 0
    secured = min(claim.balance, s.incoming_capacity)
    if secured <= 0:
        ctx.log.warning("ignoring claim: channel %s is not funded", claim.channel)
        return False
    await s.best_claim.set_if_max({"value": str(secured), "data": claim.to_json()})
    return True


async def _latest_outgoing_claim(ctx: Any) -> dict[str, str] | None:
    return await create_outgoing_claim(ctx, await ctx.transfer_log.get_outgoing_fulfilled())


async def _pull_latest_claim(ctx: Any) -> None:
    latest = await ctx.rpc.call(LATEST_CLAIM_METHOD, ctx.state.prefix, None)
    if latest:
        await _accept_claim(ctx, latest)


async def _resync(ctx: Any) -> None:
    """Ask for the peer's latest claim and send ours, retrying while the peer is not connected."""
    delay = 0.05
    for _ in range(RESYNC_ATTEMPTS):
        try:
            await _pull_latest_claim(ctx)
            mine = await _latest_outgoing_claim(ctx)
            if mine is not None:
                await ctx.rpc.call(PUSH_CLAIM_METHOD, ctx.state.prefix, mine)
            return
        except PeerError as exc:
            if "Unrecognized side protocol" in str(exc):
                ctx.log.info("peer does not exchange claims on connect: %s", exc)
                return
        except Exception as exc:
            ctx.log.debug("claim exchange not possible yet: %r", exc)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)
    ctx.log.warning("gave up exchanging latest claims with the peer after connect")
