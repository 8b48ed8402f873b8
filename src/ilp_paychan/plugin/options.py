"""The plugin's options: the ILP Kit options mapping (or snake_case keywords) → frozen settings.

What this module is for: the one place that validates plugin options. `Plugin(...)` calls it, and
so does the CLI's config loader (`check_options`), so both refuse the same things with the same
message, an `InvalidFieldsError` naming the field (and never showing a secret's value). It never
opens a socket or a store.

Rules (where they differ from the reference, docs/behaviour-differences.md says so):
- Keys are the reference's camelCase ones (`incomingSecret`, `maxBalance`, ...); the same names in
  snake_case are accepted as keywords (`incoming_secret=`, ...). `_store` is an alias of `store`.
- An unknown key is refused, naming the key and the closest known one (a typo such as
  `minBalence` would otherwise drop a credit limit without a word). Names the reference or the
  ILP Kit connector around it use are accepted even where this plugin ignores them, so their
  configs load unchanged (see IGNORED_OPTIONS, STALE_OPTIONS). A payment-channel module's plugin
  hands unknown keys to the module, unless the module declares its `option_names`; see
  `OptionPolicy`.
- The plugin is stateful iff a store is given; a module plugin requires one.
- A stateful plugin needs `maxBalance`; limits are integers given as `int` or a decimal `str`
  (optionally signed), never floats, and `minBalance` may not exceed `maxBalance`.
- The plugin needs `listener` or `server`; a listener needs `incomingSecret` (or `authCheck`),
  else every client would be refused.
- `prefix` (and `info.prefix`) is an ILP prefix ending in "."; both, when given, agree. Without
  `server` the plugin needs `prefix` and `info` (for a module plugin checked once its hooks are
  known, since the module may supply the info).
- Time limits are finite seconds above 0 and at most MAX_TIMEOUT (a day): a larger number is a
  unit mistake (milliseconds given as seconds) rather than an intention.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.ledger.store_url import check_store_url, is_memory_url
from ilp_paychan.plugin.validate import check_prefix
from ilp_paychan.transport.url import parse_btp_url

log = logging.getLogger("ilp_paychan.plugin")

DEFAULT_LISTENER_PORT = 4195
DEFAULT_REQUEST_TIMEOUT = 5.0
DEFAULT_SHUTDOWN_TIMEOUT = 5.0
#: Seconds after their expiry that settled transfers of an in-memory log are forgotten: a margin
#: for a Fulfill repeated after a dropped connection (see plugin/retention.py).
DEFAULT_SETTLED_RETENTION = 10.0
#: Seconds between two expiry sweeps of a durable store (plugin/sweep.py): a transfer no timer
#: of this process holds is cancelled at most this long (plus the sweep's margin) after its
#: expiry. It happens only after a crash or when processes share a store, and the sender
#: decides by its own clock meanwhile, so half a minute is soon enough for one indexed query.
DEFAULT_EXPIRY_SWEEP = 30.0
#: The largest time limit accepted, in seconds (one day).
MAX_TIMEOUT = 86_400.0
#: The largest `settledRetention`, in seconds (about 31 years).
MAX_RETENTION = 1e9

_INTEGER = re.compile(r"-?[0-9]+")

#: The options this plugin reads, by their names in an options mapping.
PLUGIN_OPTIONS = frozenset(
    {
        "server",
        "listener",
        "incomingSecret",
        "authCheck",
        "prefix",
        "info",
        "maxBalance",
        "minBalance",
        "token",
        "store",
        "_store",
        "storeKey",
        "ca",
        "clientCert",
        "clientKey",
        "requestTimeout",
        "shutdownTimeout",
        "settledRetention",
        "expirySweep",
    }
)
#: Keys of `options.listener`, by their names in the mapping.
LISTENER_OPTIONS = frozenset({"port", "host", "cert", "key", "ca", "clientCa"})
#: Options only a plugin made by `make_payment_channel_plugin` reads (its hooks' time limits).
MODULE_OPTIONS = frozenset({"hookTimeout", "lifecycleHookTimeout"})
#: Keys the ILP Kit connector adds to the options it hands the reference: accepted, not used.
IGNORED_OPTIONS = frozenset({"_log", "debugReplyNotifications"})
#: Options of ilp-plugin-virtual's HTTP-RPC era that old configs still carry and the reference
#: ignores: accepted with a warning, since this plugin reaches its peer by `server`/`listener`.
STALE_OPTIONS = frozenset({"rpcUri", "rpcUris", "peerPublicKey", "secret"})
#: Options of the reference this plugin cannot honour, with what to give instead.
UNSUPPORTED_OPTIONS = {
    "_backend": 'not supported; give "store" (a store URL or an object with get/put/delete)',
}

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
    "expiry_sweep": "expirySweep",
    "client_cert": "clientCert",
    "client_key": "clientKey",
    "hook_timeout": "hookTimeout",
    "lifecycle_hook_timeout": "lifecycleHookTimeout",
}
#: How close an unknown key must be to a plugin option to be refused as its typo when a
#: module that did not declare its options would otherwise receive it.
_TYPO_CUTOFF = 0.85


@dataclass(frozen=True, slots=True)
class OptionPolicy:
    """What a plugin class accepts besides the plugin's own options, and what it requires.

    The trustline `Plugin` accepts only the known names. A payment-channel module's plugin
    (`for_module`) also reads MODULE_OPTIONS, needs a store, and may take its info from the
    module. The module's own options: if it declares them (`module_options`, from the module's
    `option_names`) every other key is refused as unknown; if not (None), unknown keys are handed
    to the module as the reference does, except a near miss of a plugin option, refused as a
    typo.
    """

    for_module: bool = False
    module_options: frozenset[str] | None = frozenset()

    @property
    def requires_store(self) -> bool:
        """A payment-channel module settles against stored balances: no store, no module."""
        return self.for_module


TRUSTLINE = OptionPolicy()


def module_policy(option_names: Collection[str] | None) -> OptionPolicy:
    """The policy of a module plugin; `option_names` is what the module declares (None: not)."""
    declared = None if option_names is None else frozenset(option_names)
    return OptionPolicy(for_module=True, module_options=declared)


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
    #: Seconds between two sweeps of a durable store for expired prepared transfers no timer of
    #: this process holds (`expirySweep`; no effect on `memory:` or stateless plugins).
    expiry_sweep: float
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def stateful(self) -> bool:
        """Whether a store is configured, so the plugin keeps its own ledger and limits."""
        return self.store is not None


def normalise_options(
    options: Mapping[str, Any] | None,
    kwargs: Mapping[str, Any],
    policy: OptionPolicy = TRUSTLINE,
) -> dict[str, Any]:
    """Merge a camelCase mapping and snake_case keywords into one camelCase dict.

    Raises:
        InvalidFieldsError: `options` is no mapping, or a key is unknown (naming the key and
            the closest known name).
    """
    if options is not None and not isinstance(options, Mapping):
        raise InvalidFieldsError(f"options must be a mapping; got {type(options).__name__}")
    merged: dict[str, Any] = dict(options or {})
    for key in merged:
        _check_name(key, policy, keyword=False)
    for key, value in kwargs.items():
        _check_name(key, policy, keyword=True)
        merged[_SNAKE_TO_CAMEL.get(key, key)] = value
    if "_store" in merged:
        alias = merged.pop("_store")
        if merged.get("store") is None:
            merged["store"] = alias
    return merged


def check_options(options: Mapping[str, Any]) -> PluginSettings:
    """Validate a trustline plugin's options mapping exactly as `Plugin(options)` does.

    Raises:
        InvalidFieldsError: naming the field, as the plugin's constructor would.
    """
    return parse_settings(normalise_options(options, {}), TRUSTLINE)


def _check_name(key: Any, policy: OptionPolicy, *, keyword: bool) -> None:
    """Refuse an option name nobody reads (see the module docstring for who reads what)."""
    if not isinstance(key, str):
        raise InvalidFieldsError(f"option names must be strings; got {key!r}")
    name = _SNAKE_TO_CAMEL.get(key, key) if keyword else key
    if name in PLUGIN_OPTIONS or name in IGNORED_OPTIONS:
        return
    if name in MODULE_OPTIONS:
        if policy.for_module:
            return
        raise InvalidFieldsError(
            f'invalid "{key}": only a plugin made by make_payment_channel_plugin has hooks to time'
        )
    if name in UNSUPPORTED_OPTIONS:
        raise InvalidFieldsError(f'invalid "{key}": {UNSUPPORTED_OPTIONS[name]}')
    declared = policy.module_options
    if policy.for_module and (declared is None or key in declared) and key not in STALE_OPTIONS:
        if declared is None:
            _refuse_near_miss(key, keyword=keyword)
        return
    if key in STALE_OPTIONS:
        if not policy.for_module or (declared is not None and key not in declared):
            log.warning(
                "option %r is ignored: it belongs to the HTTP-RPC predecessor of this plugin; "
                'the peer is reached through "server" or "listener"',
                key,
            )
        return
    known = sorted(PLUGIN_OPTIONS | (MODULE_OPTIONS if policy.for_module else frozenset()))
    candidates = [*known, *sorted(declared or ())]
    if keyword:
        candidates += sorted(_SNAKE_TO_CAMEL)
    raise InvalidFieldsError(_unknown(key, candidates, known))


def _refuse_near_miss(key: str, *, keyword: bool) -> None:
    """For a module that did not declare its options: refuse only an evident typo of ours."""
    candidates = sorted(PLUGIN_OPTIONS | MODULE_OPTIONS)
    if keyword:
        candidates += sorted(_SNAKE_TO_CAMEL)
    typo = difflib.get_close_matches(key, candidates, n=1, cutoff=_TYPO_CUTOFF)
    if typo:
        raise InvalidFieldsError(
            f"unknown option {key!r} (did you mean {typo[0]!r}?); a payment-channel module "
            f"that reads {key!r} itself can declare it in its option_names"
        )


def _unknown(key: str, candidates: Iterable[str], known: Iterable[str]) -> str:
    """The message for an unknown key: the closest known name, else the list of them."""
    close = difflib.get_close_matches(key, list(candidates), n=1)
    if close:
        return f"unknown option {key!r} (did you mean {close[0]!r}?)"
    return f"unknown option {key!r} (known options: {', '.join(known)})"


def parse_settings(options: Mapping[str, Any], policy: OptionPolicy = TRUSTLINE) -> PluginSettings:
    """Validate the (normalised) options. Raises InvalidFieldsError naming the field."""
    store = _store(options.get("store"), policy)
    stateful = store is not None
    max_balance = _limit(options, "maxBalance", required=stateful)
    min_balance = _limit(options, "minBalance", required=False)
    if max_balance is not None and min_balance is not None and min_balance > max_balance:
        raise InvalidFieldsError(
            f'invalid "minBalance": must not be above "maxBalance" ({min_balance} > {max_balance})'
        )
    if not stateful:
        max_balance = min_balance = None

    server = options.get("server")
    if server is not None:
        parse_btp_url(server)  # its errors name the field and never show the token
    listener = _listener(options.get("listener"))
    if listener is None and server is None:
        raise InvalidFieldsError(
            'invalid options: give "listener" (server role) or "server" (client role) to reach '
            "a peer"
        )

    prefix = options.get("prefix")
    if prefix is not None:
        check_prefix(prefix, '"prefix"')
    info = _info(options.get("info"), prefix)
    if prefix is None and info is not None and info.get("prefix") is not None:
        prefix = info["prefix"]
    if not policy.for_module:
        require_prefix_and_info(server, prefix, info)

    incoming_secret = _optional_str(options, "incomingSecret")
    auth_check = options.get("authCheck")
    if auth_check is not None and not callable(auth_check):
        raise InvalidFieldsError(
            'invalid "authCheck": expected a callable (username, token) -> bool'
        )
    if listener is not None and not incoming_secret and auth_check is None:
        raise InvalidFieldsError(
            'invalid "incomingSecret": required for a listener (without it every client is '
            'refused), unless "authCheck" is given'
        )
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

    return PluginSettings(
        server=server,
        listener=listener,
        incoming_secret=incoming_secret,
        auth_check=auth_check,
        max_balance=max_balance,
        min_balance=min_balance,
        prefix=options.get("prefix"),
        info=info,
        token=token,
        store=store,
        store_key=store_key,
        ca=ca,
        client_cert=client_cert,
        client_key=client_key,
        request_timeout=seconds_option(options, "requestTimeout", DEFAULT_REQUEST_TIMEOUT),
        shutdown_timeout=seconds_option(options, "shutdownTimeout", DEFAULT_SHUTDOWN_TIMEOUT),
        settled_retention=_retention(options, store),
        expiry_sweep=seconds_option(options, "expirySweep", DEFAULT_EXPIRY_SWEEP),
        raw=options,
    )


def require_prefix_and_info(server: Any, prefix: Any, info: Any) -> None:
    """Without `server` the plugin answers the peer's info requests: it needs both.

    The message is the reference's, which operators may know.
    """
    if server is None and not (prefix and info is not None):
        raise InvalidFieldsError(
            "when running in server mode, the 'prefix' and 'info' config parameters are required"
        )


def seconds_option(
    options: Mapping[str, Any], name: str, default: float, *, maximum: float = MAX_TIMEOUT
) -> float:
    """A time limit: finite seconds above 0 and at most `maximum`; `default` when absent."""
    value = options.get(name)
    if value is None:
        return default
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= maximum
    ):
        raise InvalidFieldsError(
            f'invalid "{name}": expected seconds above 0 and at most {maximum:g}; got {value!r}'
        )
    return float(value)


def _store(store: Any, policy: OptionPolicy) -> Any:
    if store is False:
        store = None
    if store is True:
        raise InvalidFieldsError(
            'invalid "store": true means "a file per ledger" only in the ilp-paychan config; '
            "give a store URL such as sqlite:///path.db"
        )
    if isinstance(store, str):
        try:
            check_store_url(store)
        except ValueError as exc:
            raise InvalidFieldsError(f'invalid "store": {exc}') from None
    elif store is not None:
        missing = [
            name for name in ("get", "put", "delete") if not callable(getattr(store, name, None))
        ]
        if missing:
            raise InvalidFieldsError(
                f'invalid "store": expected a URL string or an object with get/put/delete; '
                f"{type(store).__name__} lacks {', '.join(missing)}"
            )
    if policy.requires_store and store is None:
        raise InvalidFieldsError(
            'invalid "store": a payment-channel module needs a store, and without one the '
            "plugin is stateless; give one such as sqlite:///paychan.db"
        )
    return store


def _limit(options: Mapping[str, Any], name: str, *, required: bool) -> int | None:
    value = options.get(name)
    if value is None:
        if required:
            raise InvalidFieldsError(
                f'invalid "{name}": required when the plugin has a store (an integer string)'
            )
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidFieldsError(f'invalid "{name}": expected an integer string; got {value!r}')
    if isinstance(value, str):
        if not _INTEGER.fullmatch(value):
            raise InvalidFieldsError(f'invalid "{name}": expected an integer string; got {value!r}')
        return int(value)
    return value


def _info(value: Any, prefix: str | None) -> dict[str, Any] | None:
    """The ledger info, with `prefix` filled in from the options (the caller's dict untouched)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidFieldsError(f'invalid "info": expected an object; got {type(value).__name__}')
    info = dict(value)
    if info.get("prefix") is None:
        if prefix is not None:
            info["prefix"] = prefix
    else:
        check_prefix(info["prefix"], '"info.prefix"')
        if prefix is not None and info["prefix"] != prefix:
            raise InvalidFieldsError(
                f'invalid "info.prefix": expected the same as "prefix" ({prefix!r}); '
                f"got {info['prefix']!r}"
            )
    code = info.get("currencyCode")
    if code is not None and not isinstance(code, str):
        raise InvalidFieldsError(
            f'invalid "info.currencyCode": expected a string; got {type(code).__name__}'
        )
    scale = info.get("currencyScale")
    if scale is not None and (
        isinstance(scale, bool) or not isinstance(scale, int) or not 0 <= scale <= 255
    ):
        raise InvalidFieldsError(
            f'invalid "info.currencyScale": expected an integer from 0 to 255; got {scale!r}'
        )
    connectors = info.get("connectors")
    if connectors is not None and (
        not isinstance(connectors, list) or not all(isinstance(c, str) for c in connectors)
    ):
        raise InvalidFieldsError('invalid "info.connectors": expected a list of ILP addresses')
    return info


def _listener(value: Any) -> ListenerSettings | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidFieldsError(
            f'invalid "listener": expected an object; got {type(value).__name__}'
        )
    for key in value:
        if key not in LISTENER_OPTIONS:
            raise InvalidFieldsError(
                _unknown(
                    f"listener.{key}",
                    [f"listener.{k}" for k in sorted(LISTENER_OPTIONS)],
                    sorted(f"listener.{k}" for k in LISTENER_OPTIONS),
                )
            )
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
    if parts["cert"] is None:
        for name, option in (("key", "key"), ("ca", "ca"), ("client_ca", "clientCa")):
            if parts[name] is not None:
                raise InvalidFieldsError(
                    f'invalid "listener.{option}": needs "listener.cert" (TLS)'
                )
    return ListenerSettings(port=port, **parts)


def _optional_str(options: Mapping[str, Any], name: str) -> str | None:
    value = options.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidFieldsError(f'invalid "{name}": expected a string; got {type(value).__name__}')
    return value


def _retention(options: Mapping[str, Any], store: Any) -> float | None:
    value = options.get("settledRetention")
    if value is None:
        in_memory = store is None or is_memory_url(store)
        return DEFAULT_SETTLED_RETENTION if in_memory else None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= MAX_RETENTION
    ):
        raise InvalidFieldsError(
            f'invalid "settledRetention": expected seconds from 0 to {MAX_RETENTION:g}; '
            f"got {value!r}"
        )
    return float(value)
