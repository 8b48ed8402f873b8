"""The plugin's options: the ILP Kit options mapping (or snake_case keywords) → frozen settings.

What this module is for: every check the reference makes in its constructor (PROTOCOL.md §a.5),
done once, before anything else happens, with an `InvalidFieldsError` naming the offending field.
It never opens a socket or a store; `Plugin.connect()` does that.

Rules (where they differ from the reference, docs/behaviour-differences.md says so):
- Keys are the reference's camelCase ones (`incomingSecret`, `maxBalance`, ...); the same names in
  snake_case (`incoming_secret=`, ...) are accepted too. `_store` is an alias of `store`.
- The plugin is stateful iff a store is given (or the subclass's hooks require one).
- A stateful plugin needs `maxBalance`; limits are integers given as `int` or a decimal `str`
  (optionally signed) — never floats.
- Without `server` the plugin needs `prefix` and `info` (checked by the plugin once its hooks are
  known, since a module may supply the info).
- Unknown keys are kept in `raw` (a module's constructor receives the options as given).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ilp_paychan.errors import InvalidFieldsError

DEFAULT_LISTENER_PORT = 4195
DEFAULT_REQUEST_TIMEOUT = 5.0
DEFAULT_SHUTDOWN_TIMEOUT = 5.0
#: Seconds after their expiry that settled transfers of an in-memory log are forgotten.
DEFAULT_SETTLED_RETENTION = 600.0
MEMORY_STORE_URLS = ("memory:", "memory://", "memory")

_INTEGER = re.compile(r"-?[0-9]+")

#: snake_case keyword → the reference's option name.
_SNAKE_TO_CAMEL = {
    "incoming_secret": "incomingSecret",
    "auth_check": "authCheck",
    "max_balance": "maxBalance",
    "min_balance": "minBalance",
    "store_key": "storeKey",
    "request_timeout": "requestTimeout",
    "shutdown_timeout": "shutdownTimeout",
    "settled_retention": "settledRetention",
    "client_cert": "clientCert",
    "client_key": "clientKey",
}


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    """Where the listener binds and, for TLS, the PEM file paths (read in `connect()`);
    `client_ca` (option `listener.clientCa`) makes clients present a certificate it signed."""

    port: int = DEFAULT_LISTENER_PORT
    host: str | None = None
    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    client_ca: str | None = None


@dataclass(frozen=True, slots=True)
class PluginSettings:
    """Everything the plugin needs from its options, validated and normalised."""

    server: str | None
    listener: ListenerSettings | None
    incoming_secret: str | None
    auth_check: Callable[[str, str], bool] | None
    max_balance: int | None
    min_balance: int | None
    prefix: str | None
    info: dict[str, Any] | None
    token: str | None
    store: Any
    store_key: str
    ca: str | None
    #: The client's own certificate and key for a listener that verifies clients (mutual TLS).
    client_cert: str | None
    client_key: str | None
    request_timeout: float
    shutdown_timeout: float
    #: Forget settled transfers this many seconds after their expiry (None: keep them): the
    #: `settledRetention` option, else DEFAULT_SETTLED_RETENTION for in-memory logs (`memory:`
    #: or stateless); a durable store keeps everything unless the option is given.
    settled_retention: float | None
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def stateful(self) -> bool:
        return self.store is not None


def normalise_options(
    options: Mapping[str, Any] | None, kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge a camelCase mapping and snake_case keywords into one camelCase dict."""
    if options is not None and not isinstance(options, Mapping):
        raise InvalidFieldsError(f"options must be a mapping; got {type(options).__name__}")
    merged: dict[str, Any] = dict(options or {})
    for key, value in kwargs.items():
        merged[_SNAKE_TO_CAMEL.get(key, key)] = value
    if "_store" in merged:
        alias = merged.pop("_store")
        if merged.get("store") is None:
            merged["store"] = alias
    return merged


def parse_settings(options: Mapping[str, Any], *, requires_store: bool = False) -> PluginSettings:
    """Validate the (normalised) options. Raises InvalidFieldsError naming the field."""
    store = options.get("store")
    if store is False:
        store = None
    if store is True:
        raise InvalidFieldsError(
            'invalid "store": true means "a file per ledger" only in the ilp-paychan config; '
            "give a store URL such as sqlite:///path.db"
        )
    if store is not None and not isinstance(store, str):
        missing = [
            name for name in ("get", "put", "delete") if not callable(getattr(store, name, None))
        ]
        if missing:
            raise InvalidFieldsError(
                f'invalid "store": expected a URL string or an object with get/put/delete; '
                f"{type(store).__name__} lacks {', '.join(missing)}"
            )
    if requires_store and store is None:
        raise InvalidFieldsError(
            'invalid "store": if the plugin is stateless (no store), a payment channel '
            "module cannot be used"
        )
    stateful = store is not None

    max_balance = _limit(options, "maxBalance", required=stateful)
    min_balance = _limit(options, "minBalance", required=False)
    if not stateful:
        max_balance = min_balance = None

    server = options.get("server")
    if server is not None:
        if not isinstance(server, str) or not server:
            raise InvalidFieldsError(f'invalid "server": expected a btp+ws(s) URL; got {server!r}')
        if not (server.startswith("btp+ws://") or server.startswith("btp+wss://")):
            raise InvalidFieldsError('invalid "server": protocol must be "btp+wss:" or "btp+ws:"')

    listener = _listener(options.get("listener"))

    prefix = options.get("prefix")
    if prefix is not None and not isinstance(prefix, str):
        raise InvalidFieldsError(
            f'invalid "prefix": expected a string; got {type(prefix).__name__}'
        )

    info = options.get("info")
    if info is not None:
        if not isinstance(info, Mapping):
            raise InvalidFieldsError(
                f'invalid "info": expected an object; got {type(info).__name__}'
            )
        info = dict(info)
        if prefix is not None and not info.get("prefix"):
            info["prefix"] = prefix
        if info.get("prefix") is not None and not isinstance(info["prefix"], str):
            raise InvalidFieldsError('invalid "info.prefix": expected a string')

    incoming_secret = _optional_str(options, "incomingSecret")
    token = _optional_str(options, "token")
    ca = _optional_str(options, "ca")
    client_cert = _optional_str(options, "clientCert")
    client_key = _optional_str(options, "clientKey")
    if client_key is not None and client_cert is None:
        raise InvalidFieldsError('invalid "clientKey": given without "clientCert"')
    store_key = options.get("storeKey", "")
    if not isinstance(store_key, str) or not re.fullmatch(r"[A-Za-z0-9_-]*", store_key):
        raise InvalidFieldsError(
            f'invalid "storeKey": expected base64url characters; got {store_key!r}'
        )

    auth_check = options.get("authCheck")
    if auth_check is not None and not callable(auth_check):
        raise InvalidFieldsError(
            'invalid "authCheck": expected a callable (username, token) -> bool'
        )

    return PluginSettings(
        server=server,
        listener=listener,
        incoming_secret=incoming_secret,
        auth_check=auth_check,
        max_balance=max_balance,
        min_balance=min_balance,
        prefix=prefix,
        info=info,
        token=token,
        store=store,
        store_key=store_key,
        ca=ca,
        client_cert=client_cert,
        client_key=client_key,
        request_timeout=_seconds(options, "requestTimeout", DEFAULT_REQUEST_TIMEOUT),
        shutdown_timeout=_seconds(options, "shutdownTimeout", DEFAULT_SHUTDOWN_TIMEOUT),
        settled_retention=_retention(options, store),
        raw=options,
    )


def _limit(options: Mapping[str, Any], name: str, *, required: bool) -> int | None:
    value = options.get(name)
    if value is None:
        if required:
            raise InvalidFieldsError(f'invalid "{name}"; got None (a stateful plugin needs it)')
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidFieldsError(f'invalid "{name}"; expected an integer string; got {value!r}')
    if isinstance(value, str):
        if not _INTEGER.fullmatch(value):
            raise InvalidFieldsError(f'invalid "{name}"; expected an integer string; got {value!r}')
        return int(value)
    return value


def _listener(value: Any) -> ListenerSettings | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidFieldsError(f'invalid "listener": expected an object; got {value!r}')
    port = value.get("port", DEFAULT_LISTENER_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidFieldsError(f'invalid "listener.port": expected 0..65535; got {port!r}')
    parts: dict[str, str | None] = {}
    options = {"host": "host", "cert": "cert", "key": "key", "ca": "ca", "client_ca": "clientCa"}
    for name, option in options.items():
        part = value.get(option)
        if part is not None and not isinstance(part, str):
            raise InvalidFieldsError(
                f'invalid "listener.{option}": expected a string; got {part!r}'
            )
        parts[name] = part
    if parts["client_ca"] is not None and parts["cert"] is None:
        raise InvalidFieldsError('invalid "listener.clientCa": needs "listener.cert" (TLS)')
    return ListenerSettings(port=port, **parts)


def _optional_str(options: Mapping[str, Any], name: str) -> str | None:
    value = options.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidFieldsError(f'invalid "{name}": expected a string; got {type(value).__name__}')
    return value


def _retention(options: Mapping[str, Any], store: Any) -> float | None:
    value = options.get("settledRetention")
    if value is None:
        in_memory = store is None or (isinstance(store, str) and store in MEMORY_STORE_URLS)
        return DEFAULT_SETTLED_RETENTION if in_memory else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1e9:
        raise InvalidFieldsError(
            f'invalid "settledRetention": expected seconds from 0 to 1e9; got {value!r}'
        )
    return float(value)


def _seconds(options: Mapping[str, Any], name: str, default: float) -> float:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidFieldsError(
            f'invalid "{name}": expected a positive number of seconds; got {value!r}'
        )
    return float(value)
