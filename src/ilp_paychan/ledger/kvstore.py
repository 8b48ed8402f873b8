"""Adapter for a user's key/value object: the reference's `_store` option.

The object needs `get(key) -> str | None` and `put(key, value)` (and optionally `delete(key)`),
sync or async. Such a store has no transactions, so this adapter is **single-process only**:
one asyncio lock per adapter serialises the operations, and a crash between two `put`s can leave
a log half-written. Use SQLite or PostgreSQL wherever money matters. An `OSError` from the
object (ConnectionError, TimeoutError, ...) becomes StoreUnavailableError, a temporary error.

The layout extends the reference's, so its data is read as it wrote it:
`<key>:tl:transfer:<id>` (record JSON), `<key>:tl:balance:if` / `:of` (and new `:ifap` / `:ofap`,
which default to IF / OF as the reference assumed), `<key>:tl:maximum` / `:minimum`,
`<key>:tl:prepared` and `<key>:tl:notices` (JSON lists of ids; new), `<key>:mvt:maximum`.
A pending notice's payload is the record's `notice` (base64url). For `prune_settled`, settled
transfers are listed by the minute of their expiry: `<key>:tl:settled` (JSON list of minutes,
`YYYYMMDDHHMM` UTC) and `<key>:tl:settled:<minute>` (JSON list of ids); transfers settled by a
version without these lists are never pruned.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
from datetime import UTC, datetime
from typing import Any

from ilp_paychan.errors import InvalidFieldsError, StoreUnavailableError
from ilp_paychan.ledger import rules
from ilp_paychan.ledger.inputs import parse_expiry
from ilp_paychan.ledger.records import LogTotals, PrepareOutcome, StoredTransfer
from ilp_paychan.ledger.store import DEFAULT_MAX_ENTRY, LedgerStore


class KeyValueStore(LedgerStore):
    """`LedgerStore` over a user's get/put object; one process only."""

    def __init__(self, target: Any) -> None:
        self._target = target
        self._lock = asyncio.Lock()

    async def _get(self, name: str) -> str | None:
        try:
            value = self._target.get(name)
            if inspect.isawaitable(value):
                value = await value
        except OSError as exc:
            raise _unavailable(exc) from exc
        return str(value) if value else None

    async def _put(self, name: str, value: str) -> None:
        try:
            done = self._target.put(name, value)
            if inspect.isawaitable(done):
                await done
        except OSError as exc:
            raise _unavailable(exc) from exc

    async def _delete(self, name: str) -> None:
        delete = getattr(self._target, "delete", None)
        try:
            done = delete(name) if callable(delete) else self._target.put(name, "")
            if inspect.isawaitable(done):
                await done
        except OSError as exc:
            raise _unavailable(exc) from exc

    async def _totals(self, key: str) -> LogTotals:
        names = ("if", "of", "ifap", "ofap")
        raw = [await self._get(f"{key}:tl:balance:{n}") for n in names]
        incoming = int(raw[0] or 0)
        outgoing = int(raw[1] or 0)
        return LogTotals(
            incoming,
            outgoing,
            int(raw[2]) if raw[2] is not None else incoming,
            int(raw[3]) if raw[3] is not None else outgoing,
            await self._get(f"{key}:tl:maximum"),
            await self._get(f"{key}:tl:minimum"),
        )

    async def _put_totals(self, key: str, totals: LogTotals) -> None:
        await self._put(f"{key}:tl:balance:if", str(totals.incoming_fulfilled))
        await self._put(f"{key}:tl:balance:of", str(totals.outgoing_fulfilled))
        await self._put(f"{key}:tl:balance:ifap", str(totals.incoming_fulfilled_and_prepared))
        await self._put(f"{key}:tl:balance:ofap", str(totals.outgoing_fulfilled_and_prepared))

    async def _transfer(self, key: str, transfer_id: str) -> StoredTransfer | None:
        raw = await self._get(f"{key}:tl:transfer:{transfer_id}")
        if raw is None:
            return None
        record = json.loads(raw)
        transfer = record["transfer"]
        return StoredTransfer(
            id=transfer_id,
            transfer_json=json.dumps(transfer, separators=(",", ":"), ensure_ascii=False),
            is_incoming=bool(record["isIncoming"]),
            amount=int(transfer["amount"]),
            expires_at=_expiry_or_none(transfer.get("expiresAt")),
            state=record["state"],
            fulfillment=record.get("fulfillment"),
            notify_peer=bool(record.get("notifyPeer", False)),
            notice=_decode_notice(record.get("notice")),
        )

    async def _put_transfer(self, key: str, transfer: StoredTransfer) -> None:
        record: dict[str, Any] = {
            "transfer": json.loads(transfer.transfer_json),
            "isIncoming": transfer.is_incoming,
            "state": transfer.state,
        }
        if transfer.fulfillment is not None:
            record["fulfillment"] = transfer.fulfillment
        if transfer.notify_peer:
            record["notifyPeer"] = True
            if transfer.notice is not None:
                record["notice"] = base64.urlsafe_b64encode(transfer.notice).decode().rstrip("=")
        value = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
        await self._put(f"{key}:tl:transfer:{transfer.id}", value)

    async def _ids(self, key: str, index: str) -> list[str]:
        raw = await self._get(f"{key}:tl:{index}")
        ids: list[str] = [] if raw is None else json.loads(raw)
        return ids

    async def _set_member(self, key: str, index: str, transfer_id: str, member: bool) -> None:
        ids = await self._ids(key, index)
        if member == (transfer_id in ids):
            return
        if member:
            ids.append(transfer_id)
        else:
            ids.remove(transfer_id)
        await self._put(f"{key}:tl:{index}", json.dumps(ids, separators=(",", ":")))

    async def read_totals(self, key: str) -> LogTotals:
        async with self._lock:
            return await self._totals(key)

    async def read_transfer(self, key: str, transfer_id: str) -> StoredTransfer | None:
        async with self._lock:
            return await self._transfer(key, transfer_id)

    async def prepare(
        self,
        key: str,
        candidate: StoredTransfer,
        maximum: int | None,
        minimum: int | None,
    ) -> PrepareOutcome:
        async with self._lock:
            totals = await self._totals(key)
            outcome = rules.prepare(
                totals,
                await self._transfer(key, candidate.id),
                candidate,
                rules.effective_limit(totals.maximum, maximum),
                rules.effective_limit(totals.minimum, minimum),
            )
            if outcome is PrepareOutcome.NEW:
                await self._put_transfer(key, candidate)
                await self._set_member(key, "prepared", candidate.id, True)
                await self._put_totals(key, totals)
            return outcome

    async def fulfill(
        self,
        key: str,
        transfer_id: str,
        fulfillment: str,
        notify_peer: bool,
        notice: bytes | None = None,
    ) -> bool:
        async with self._lock:
            totals = await self._totals(key)
            transfer = await self._transfer(key, transfer_id)
            changed = rules.fulfill(totals, transfer, transfer_id, fulfillment, notify_peer, notice)
            if changed and transfer is not None:
                await self._settle(key, transfer, totals)
            return changed

    async def cancel(
        self, key: str, transfer_id: str, notify_peer: bool, notice: bytes | None = None
    ) -> bool:
        async with self._lock:
            totals = await self._totals(key)
            transfer = await self._transfer(key, transfer_id)
            changed = rules.cancel(totals, transfer, transfer_id, notify_peer, notice)
            if changed and transfer is not None:
                await self._settle(key, transfer, totals)
            return changed

    async def revert_fulfillment(self, key: str, transfer_id: str) -> bool:
        async with self._lock:
            totals = await self._totals(key)
            transfer = await self._transfer(key, transfer_id)
            changed = rules.revert_fulfillment(totals, transfer, transfer_id)
            if changed:
                assert transfer is not None
                await self._put_transfer(key, transfer)
                await self._put_totals(key, totals)
                await self._set_member(key, "notices", transfer_id, False)
            return changed

    async def _settle(self, key: str, transfer: StoredTransfer, totals: LogTotals) -> None:
        await self._put_transfer(key, transfer)
        await self._put_totals(key, totals)
        await self._set_member(key, "prepared", transfer.id, False)
        if transfer.notify_peer:
            await self._set_member(key, "notices", transfer.id, True)
        if transfer.expires_at is not None:
            minute = _minute_of(transfer.expires_at)
            await self._set_member(key, "settled", minute, True)
            await self._set_member(key, f"settled:{minute}", transfer.id, True)

    async def set_limit(self, key: str, field: str, value: str) -> None:
        async with self._lock:
            await self._put(f"{key}:tl:{field}", value)

    async def list_prepared(self, key: str, expired_at: datetime | None) -> list[StoredTransfer]:
        async with self._lock:
            found = [await self._transfer(key, i) for i in await self._ids(key, "prepared")]
        prepared = [
            t
            for t in found
            if t is not None
            and (expired_at is None or (t.expires_at is not None and t.expires_at <= expired_at))
        ]
        prepared.sort(
            key=lambda t: (
                t.expires_at is None,
                t.expires_at.timestamp() if t.expires_at else 0,
                t.id,
            )
        )
        return prepared

    async def list_peer_notices(self, key: str) -> list[StoredTransfer]:
        async with self._lock:
            found = [await self._transfer(key, i) for i in await self._ids(key, "notices")]
        return sorted((t for t in found if t is not None), key=lambda t: t.id)

    async def clear_peer_notice(self, key: str, transfer_id: str) -> None:
        async with self._lock:
            transfer = await self._transfer(key, transfer_id)
            if transfer is not None and transfer.notify_peer:
                transfer.notify_peer = False
                transfer.notice = None
                await self._put_transfer(key, transfer)
            await self._set_member(key, "notices", transfer_id, False)

    async def prune_settled(self, key: str, expired_before: datetime) -> int:
        """Walk the minutes up to `expired_before`'s, deleting what `rules.prunable` picks."""
        gone = 0
        async with self._lock:
            minutes = await self._ids(key, "settled")
            last = _minute_of(expired_before)
            kept: list[str] = []
            for minute in minutes:
                if minute > last:
                    kept.append(minute)
                    continue
                remaining = []
                for transfer_id in await self._ids(key, f"settled:{minute}"):
                    transfer = await self._transfer(key, transfer_id)
                    if transfer is None:
                        continue
                    if rules.prunable(transfer, expired_before):
                        await self._delete(f"{key}:tl:transfer:{transfer_id}")
                        gone += 1
                    else:
                        remaining.append(transfer_id)
                if remaining:
                    kept.append(minute)
                    await self._put(
                        f"{key}:tl:settled:{minute}", json.dumps(remaining, separators=(",", ":"))
                    )
                else:
                    await self._delete(f"{key}:tl:settled:{minute}")
            if kept != minutes:
                await self._put(f"{key}:tl:settled", json.dumps(kept, separators=(",", ":")))
        return gone

    async def read_max(self, key: str) -> str:
        async with self._lock:
            return await self._get(f"{key}:mvt:maximum") or DEFAULT_MAX_ENTRY

    async def set_if_max(self, key: str, value: int, entry_json: str) -> str | None:
        async with self._lock:
            current = await self._get(f"{key}:mvt:maximum")
            current_value = 0 if current is None else int(json.loads(current)["value"])
            if value <= current_value:
                return None
            await self._put(f"{key}:mvt:maximum", entry_json)
            return current or DEFAULT_MAX_ENTRY

    async def close(self) -> None:
        return None


def _unavailable(exc: OSError) -> StoreUnavailableError:
    """The user's object could not reach its data (ConnectionError, TimeoutError, an I/O error):
    temporary. The message names only the error's class, as a peer may be sent it."""
    return StoreUnavailableError(
        f"the key/value ledger store is unavailable ({type(exc).__name__}); try again later"
    )


def _minute_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M")


def _decode_notice(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _expiry_or_none(value: object) -> datetime | None:
    try:
        return parse_expiry(value)
    except InvalidFieldsError:
        return None
