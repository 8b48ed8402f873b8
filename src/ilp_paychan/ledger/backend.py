"""Backend: hands out TransferLogs and MaxValueTrackers over one store, chosen by URL or object.

`memory:` keeps everything in the process; `sqlite:///relative.db` / `sqlite:////abs.db` (the
SQLAlchemy convention) is the embedded durable default; `postgresql://...` is shared by many
processes or hosts; any object with `get`/`put`/`delete` is wrapped by the single-process
key/value adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ilp_paychan.ledger.inputs import check_key, parse_limit
from ilp_paychan.ledger.max_value import MaxValueTracker
from ilp_paychan.ledger.opening import open_store_url
from ilp_paychan.ledger.store import LedgerStore
from ilp_paychan.ledger.transfer_log import TransferLog


class Backend:
    """Factory of TransferLogs and MaxValueTrackers sharing one store.

    The same key on the same store gives the same data, in every process opening that store.
    """

    __slots__ = ("store",)

    def __init__(self, store: LedgerStore) -> None:
        self.store = store

    def get_transfer_log(
        self,
        key: str | Mapping[str, Any] = "",
        maximum: int | str | None = None,
        minimum: int | str | None = None,
    ) -> TransferLog:
        """The TransferLog at `key` (base64url alphabet, default "").

        `maximum`/`minimum` (None: unlimited) apply while no limit is stored for the key.
        A mapping `{"key", "maximum", "minimum"}` is accepted too, as the reference's options.

        Raises:
            ValueError: the key uses other characters.
            InvalidFieldsError: a limit is not an integer.
        """
        if isinstance(key, Mapping):
            options = key
            key = options.get("key", "")
            maximum = options.get("maximum", maximum)
            minimum = options.get("minimum", minimum)
        return TransferLog(
            self.store,
            check_key(key),
            parse_limit(maximum, "maximum"),
            parse_limit(minimum, "minimum"),
        )

    def get_max_value_tracker(self, key: str | Mapping[str, Any]) -> MaxValueTracker:
        """The MaxValueTracker at `key` (required; base64url alphabet).

        Raises:
            ValueError: the key is missing or uses other characters.
        """
        if isinstance(key, Mapping):
            key = key.get("key")  # type: ignore[assignment]
        return MaxValueTracker(self.store, check_key(key, required=True))

    async def close(self) -> None:
        """Release the store's connections and threads; the Backend is unusable afterwards."""
        await self.store.close()


async def open_backend(url_or_store: object = "memory:") -> Backend:
    """A Backend over the store named by a URL, or over a store object.

    Accepts `memory:`, `sqlite:///path`, `postgresql://...` (or `postgres://`), a `Path` (an
    SQLite file), a `LedgerStore`, an existing `Backend`, or a user key/value object with
    `get(key)`, `put(key, value)`, `delete(key)` (sync or async; single process only).

    Raises:
        ValueError: an unknown URL scheme, a malformed URL, or an object that is no store.
        StoreOpenError: the store cannot be opened; the message names the store (password
            masked), its file or database, and the cause.
    """
    if isinstance(url_or_store, Backend):
        return url_or_store
    if isinstance(url_or_store, Path):
        url_or_store = "sqlite:///" + str(url_or_store)
    if isinstance(url_or_store, str):
        return Backend(await open_store_url(url_or_store))
    if _is_ledger_store(url_or_store):
        return Backend(url_or_store)  # type: ignore[arg-type]
    if all(callable(getattr(url_or_store, name, None)) for name in ("get", "put")):
        from ilp_paychan.ledger.kvstore import KeyValueStore

        return Backend(KeyValueStore(url_or_store))
    raise ValueError(
        "store must be a URL (memory:, sqlite:///..., postgresql://...) or an object with "
        f"get/put/delete, got {type(url_or_store).__name__}"
    )


def _is_ledger_store(candidate: object) -> bool:
    return all(
        callable(getattr(candidate, name, None))
        for name in ("read_totals", "prepare", "fulfill", "cancel", "set_if_max", "close")
    )
