"""The trustline options of `BtpPlugin`: `balance`, `store`, `storeKey` and `settlement`.

Why a module of its own: `v2.options` validates the link options; these say how much the peer
may owe and where that is kept, and are validated once, here, with an `InvalidFieldsError`
naming the field (`balance.maximum`, ...), so the constructor and the shell refuse the same
things in the same words.

`balance` uses ilp-connector 23's account `balance` names and formats (its config schema):
`maximum` (required), `minimum` (default "-Infinity"), `settleThreshold` (none: never settle),
`settleTo` (default "0"), each a decimal string of an integer; `maximum` may be "Infinity" and
`minimum` "-Infinity", `settleThreshold` "-Infinity" (never). The balance is ours: positive
means the peer owes us. ilp-connector checks none of the orderings; we refuse the settings that
cannot work: minimum <= maximum, minimum <= settleThreshold <= settleTo <= maximum (a
`settleTo` above `maximum` would be refused by our own limit; a threshold above `settleTo`
would settle again at once).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.ledger.inputs import check_key
from ilp_paychan.ledger.store_url import check_store_url, is_memory_url, redact_url

#: Keys of `balance` (camelCase; snake_case is accepted too).
BALANCE_OPTIONS: Final = frozenset({"maximum", "minimum", "settleThreshold", "settleTo"})
_SNAKE: Final = {"settle_threshold": "settleThreshold", "settle_to": "settleTo"}
_INTEGER: Final = re.compile(r"^(0|-?[1-9][0-9]*)$")
#: Store used when `balance` is given without `store`: nothing survives the process.
DEFAULT_STORE: Final = "memory:"
#: Seconds after its expiry a settled packet is kept on `memory:`: a repeat of its Prepare is
#: refused as expired by then, and this covers the peers' clock difference and the peer's
#: verdict on a Prepare whose Fulfill it did not get (sent within a second of its expiry).
DEFAULT_MEMORY_RETENTION: Final = 10.0
#: Seconds after its expiry a settled packet is kept on a durable store (disk is cheap; an
#: operator may look a packet up).
DEFAULT_DURABLE_RETENTION: Final = 3600.0
#: The largest `settledRetention`, in seconds (about 31 years).
MAX_RETENTION: Final = 1e9


@dataclass(frozen=True, slots=True)
class BalanceSettings:
    """The limits and settlement points of the bilateral balance (None: unlimited / never)."""

    maximum: int | None
    minimum: int | None
    settle_threshold: int | None
    settle_to: int


@dataclass(frozen=True, slots=True)
class TrustlineSettings:
    """Where the balance is kept and how it is limited and settled."""

    #: None: no limits, the balance is only kept (and settled by hand with `send_money`).
    balance: BalanceSettings | None
    #: A store URL (`memory:`, `sqlite:///...`, `postgresql://...`).
    store: str
    #: The TransferLog key; processes sharing a store and a key share one balance.
    store_key: str
    #: The payment-channel module (see `v2.settlement`), or None to settle with plain Transfers.
    settlement: Any = None
    #: Seconds after its expiry that a settled packet is kept (`settledRetention`).
    settled_retention: float = DEFAULT_MEMORY_RETENTION


def parse_trustline_settings(options: Mapping[str, Any]) -> TrustlineSettings | None:
    """The trustline settings from normalised (camelCase) plugin options; None when neither
    `balance` nor `store` is given (the plugin then keeps no balance).

    Raises:
        InvalidFieldsError: naming the field (`balance.maximum`, `store`, ...).
    """
    balance_option = options.get("balance")
    store_option = options.get("store")
    key_option = options.get("storeKey")
    settlement = options.get("settlement")
    retention_option = options.get("settledRetention")
    if balance_option is None and store_option is None:
        for name, value in (
            ("storeKey", key_option),
            ("settlement", settlement),
            ("settledRetention", retention_option),
        ):
            if value is not None:
                raise InvalidFieldsError(
                    f'invalid "{name}": needs "balance" or "store" (the trustline it belongs to)'
                )
        return None
    balance = None if balance_option is None else parse_balance(balance_option)
    store = DEFAULT_STORE if store_option is None else parse_store(store_option)
    key = "" if key_option is None else key_option
    try:
        key = check_key(key)
    except ValueError:
        raise InvalidFieldsError(
            f'invalid "storeKey": expected letters, digits, "-" and "_"; got {key_option!r}'
        ) from None
    if settlement is not None:
        from ilp_paychan.v2.settlement import check_settlement_module

        check_settlement_module(settlement)
    return TrustlineSettings(
        balance=balance,
        store=store,
        store_key=key,
        settlement=settlement,
        settled_retention=parse_retention(retention_option, store),
    )


def parse_retention(value: object, store: str) -> float:
    """`settledRetention`: seconds after its expiry that a settled packet is kept; by default
    DEFAULT_MEMORY_RETENTION on `memory:` and DEFAULT_DURABLE_RETENTION on a durable store.

    Raises:
        InvalidFieldsError: not a number of seconds from 0 to MAX_RETENTION.
    """
    if value is None:
        return DEFAULT_MEMORY_RETENTION if is_memory_url(store) else DEFAULT_DURABLE_RETENTION
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= MAX_RETENTION
    ):
        raise InvalidFieldsError(
            f'invalid "settledRetention": expected seconds from 0 to {MAX_RETENTION:g}'
            f" (kept after a packet's expiry); got {value!r}"
        )
    return float(value)


def parse_store(value: object) -> str:
    """A store URL, or a filesystem path (str or Path) taken as an SQLite file.

    Raises:
        InvalidFieldsError: neither, or a URL `open_backend` could not open (password masked).
    """
    if isinstance(value, Path):
        value = "sqlite:///" + str(value.absolute())
    if not isinstance(value, str) or not value:
        raise InvalidFieldsError(
            'invalid "store": expected a store URL (memory:, sqlite:///PATH, postgresql://...)'
            f" or a file path; got {type(value).__name__}"
        )
    if ":" not in value.split("/", 1)[0]:
        value = "sqlite:///" + str(Path(value).absolute())
    try:
        check_store_url(value)
    except ValueError as exc:
        raise InvalidFieldsError(f'invalid "store" {redact_url(value)}: {exc}') from None
    return value


def parse_balance(value: object) -> BalanceSettings:
    """`balance` as ilp-connector's account option, checked for orderings that cannot work.

    Raises:
        InvalidFieldsError: naming the field.
    """
    if not isinstance(value, Mapping):
        raise InvalidFieldsError(
            f'invalid "balance": expected an object; got {type(value).__name__}'
        )
    given: dict[str, Any] = {}
    for key, item in value.items():
        name = _SNAKE.get(key, key) if isinstance(key, str) else key
        if name not in BALANCE_OPTIONS:
            raise InvalidFieldsError(
                f"unknown option 'balance.{key}' (known: "
                f"{', '.join('balance.' + n for n in sorted(BALANCE_OPTIONS))})"
            )
        given[name] = item
    if "maximum" not in given:
        raise InvalidFieldsError(
            'invalid "balance.maximum": required (as in ilp-connector), a decimal string such'
            ' as "1000" or "Infinity": the most the peer may owe us'
        )
    maximum = _limit(given["maximum"], "maximum", "Infinity")
    minimum = _limit(given.get("minimum", "-Infinity"), "minimum", "-Infinity")
    threshold = (
        None
        if given.get("settleThreshold") is None
        else _limit(given["settleThreshold"], "settleThreshold", "-Infinity")
    )
    settle_to = _limit(given.get("settleTo", "0"), "settleTo", None)
    assert settle_to is not None
    if minimum is not None and maximum is not None and minimum > maximum:
        raise InvalidFieldsError(
            f'invalid "balance.minimum": {minimum} is above "balance.maximum" ({maximum})'
        )
    if threshold is not None:
        if minimum is not None and threshold < minimum:
            raise InvalidFieldsError(
                f'invalid "balance.settleThreshold": {threshold} is below "balance.minimum"'
                f" ({minimum}); the balance never gets there, so it would never settle"
            )
        if threshold > settle_to:
            raise InvalidFieldsError(
                f'invalid "balance.settleThreshold": {threshold} is above "balance.settleTo"'
                f" ({settle_to}); settling would leave the balance below the threshold"
            )
        if maximum is not None and settle_to > maximum:
            raise InvalidFieldsError(
                f'invalid "balance.settleTo": {settle_to} is above "balance.maximum" ({maximum});'
                " our own limit would refuse the settlement"
            )
    return BalanceSettings(maximum, minimum, threshold, settle_to)


def _limit(value: object, name: str, infinity: str | None) -> int | None:
    if value == infinity:
        return None
    if isinstance(value, str) and _INTEGER.match(value) and len(value) <= 40:
        return int(value)
    allowed = f' or "{infinity}"' if infinity else ""
    raise InvalidFieldsError(
        f'invalid "balance.{name}": expected a decimal string of an integer (such as "-500")'
        f"{allowed}; got {value!r}"
    )
