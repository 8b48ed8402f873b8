"""`BtpPlugin`'s options: ilp-plugin-btp 1.5.0's names (camelCase or snake_case) → frozen settings.

What this module is for: the one validation of a v2 plugin's options, so the constructor and the
shell's config loader (`check_btp_options`) refuse the same things with the same message, an
`InvalidFieldsError` naming the field and never showing a secret.

Rules:
- Keys are ilp-plugin-btp's (`server`, `listener`, `reconnectInterval`, `responseTimeout`,
  `btpAccount`, `btpToken`); the TLS options are the v1 plugin's (`ca`, `clientCert`,
  `clientKey`, `listener.cert`, `listener.key`, `listener.ca`, `listener.clientCa`). Ours:
  `listener.host`, `address` (our ILP address, the `triggeredBy` of the Rejects we make), and
  `ildcp` (what a listener tells its client, RFC 31), and the trustline's `balance`, `store`,
  `storeKey` and `settlement` (checked by `v2.trustline_options`). snake_case keywords are
  accepted too.
- Times are milliseconds, as in ilp-plugin-btp: positive and at most a day.
- Exactly one of `server` and `listener`. A listener needs `listener.secret` (its clients'
  token); a client's credentials come from the URL or from `btpAccount`/`btpToken`, not both
  (ilp-plugin-btp's rule).
- An unknown key is refused with the closest known name. ilp-plugin-btp options this plugin
  does not implement are refused with what to use instead.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from ilp_paychan.codec.address import is_valid_address
from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.transport.url import parse_btp_url
from ilp_paychan.v2.trustline_options import TrustlineSettings, parse_trustline_settings

#: ilp-plugin-btp's default `responseTimeout`, in milliseconds.
DEFAULT_RESPONSE_TIMEOUT_MS: Final = 35_000
#: Our default wait between redials (ms): the transport's doubling back-off up to this.
DEFAULT_RECONNECT_INTERVAL_MS: Final = 1_000
MAX_MILLISECONDS: Final = 86_400_000

#: The options `BtpPlugin` reads, by their camelCase names.
BTP_PLUGIN_OPTIONS: Final = frozenset(
    {
        "server",
        "listener",
        "reconnectInterval",
        "responseTimeout",
        "btpAccount",
        "btpToken",
        "ca",
        "clientCert",
        "clientKey",
        "address",
        "ildcp",
        "balance",
        "store",
        "storeKey",
        "settlement",
        "settledRetention",
    }
)
#: Keys of `listener`.
BTP_LISTENER_OPTIONS: Final = frozenset({"port", "host", "secret", "cert", "key", "ca", "clientCa"})
#: Keys of `ildcp`.
ILDCP_OPTIONS: Final = frozenset({"clientAddress", "addressPrefix", "assetCode", "assetScale"})
#: ilp-plugin-btp options not implemented here, with what to give instead.
UNSUPPORTED_BTP_OPTIONS: Final = {
    "reconnectIntervals": 'not supported; give "reconnectInterval" (the longest wait, in ms)',
    "reconnectClearTryTimeout": "not supported; the back-off starts over by itself once a"
    " connection stayed up",
    "btpAuthFlags": "not supported; the auth message carries auth, auth_username and auth_token",
}

_SNAKE_TO_CAMEL: Final = {
    "reconnect_interval": "reconnectInterval",
    "response_timeout": "responseTimeout",
    "btp_account": "btpAccount",
    "btp_token": "btpToken",
    "client_cert": "clientCert",
    "client_key": "clientKey",
    "client_ca": "clientCa",
    "client_address": "clientAddress",
    "address_prefix": "addressPrefix",
    "asset_code": "assetCode",
    "asset_scale": "assetScale",
    "store_key": "storeKey",
    "settled_retention": "settledRetention",
}


@dataclass(frozen=True, slots=True)
class BtpListenerSettings:
    """Where a listener binds, its clients' token, and its TLS files (read in `connect()`)."""

    port: int
    host: str | None
    secret: str
    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    client_ca: str | None = None


@dataclass(frozen=True, slots=True)
class IldcpSettings:
    """What a listener answers its client's ILDCP request with (RFC 31).

    Exactly one of `client_address` (given as is) and `address_prefix` (the client's address is
    ``{address_prefix}.{username}``, the username of its auth message) is set.
    """

    asset_code: str
    asset_scale: int
    client_address: str | None = None
    address_prefix: str | None = None


@dataclass(frozen=True, slots=True)
class BtpPluginSettings:
    """Everything `BtpPlugin` needs from its options, validated; times in seconds."""

    #: The client URL with the credentials in it (btpAccount/btpToken folded in), or None.
    server: str | None
    listener: BtpListenerSettings | None
    reconnect_interval: float
    response_timeout: float
    ca: str | None
    client_cert: str | None
    client_key: str | None
    address: str
    ildcp: IldcpSettings | None
    #: `balance`/`store`/`storeKey`/`settlement` (see `v2.trustline_options`); None: no balance.
    trustline: TrustlineSettings | None = None

    @property
    def is_listener(self) -> bool:
        """Whether the plugin is the server side (it binds rather than dials)."""
        return self.listener is not None


def normalise_btp_options(
    options: Mapping[str, Any] | None, kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge a camelCase mapping and snake_case (or camelCase) keywords into one camelCase dict.

    Raises:
        InvalidFieldsError: `options` is no mapping, or a key is unknown or not implemented.
    """
    if options is not None and not isinstance(options, Mapping):
        raise InvalidFieldsError(f"options must be a mapping; got {type(options).__name__}")
    merged: dict[str, Any] = {}
    for key, value in (*(options or {}).items(), *kwargs.items()):
        if not isinstance(key, str):
            raise InvalidFieldsError(f"option names must be strings; got {key!r}")
        name = _SNAKE_TO_CAMEL.get(key, key)
        if name in UNSUPPORTED_BTP_OPTIONS:
            raise InvalidFieldsError(f'invalid "{key}": {UNSUPPORTED_BTP_OPTIONS[name]}')
        if name not in BTP_PLUGIN_OPTIONS:
            raise InvalidFieldsError(_unknown(key, BTP_PLUGIN_OPTIONS, ""))
        merged[name] = value
    return merged


def check_btp_options(options: Mapping[str, Any]) -> BtpPluginSettings:
    """Validate a v2 plugin's options mapping exactly as `BtpPlugin(options)` does.

    Raises:
        InvalidFieldsError: naming the field.
    """
    return parse_btp_settings(normalise_btp_options(options, {}))


def parse_btp_settings(options: Mapping[str, Any]) -> BtpPluginSettings:
    """Validate normalised options. Raises InvalidFieldsError naming the field."""
    server = options.get("server")
    listener = _listener(options.get("listener"))
    if (server is None) == (listener is None):
        raise InvalidFieldsError(
            'invalid options: give exactly one of "server" (client role, a btp+ws:// or'
            ' btp+wss:// URL) and "listener" (server role)'
        )
    account = _optional_str(options, "btpAccount")
    token = _optional_str(options, "btpToken")
    if server is not None:
        url = parse_btp_url(server)  # names "server", never shows the token
        if (url.username or url.token) and (account is not None or token is not None):
            raise InvalidFieldsError(
                'invalid "btpAccount"/"btpToken": the credentials must be given in the "server"'
                " URL or in these options, but not both"
            )
        if account is not None or token is not None:
            server = _with_credentials(server, account or "", token or "")
    elif account is not None or token is not None:
        raise InvalidFieldsError('invalid "btpAccount"/"btpToken": only a client ("server") has')
    ca = _optional_str(options, "ca")
    client_cert = _optional_str(options, "clientCert")
    client_key = _optional_str(options, "clientKey")
    if client_key is not None and client_cert is None:
        raise InvalidFieldsError('invalid "clientKey": given without "clientCert"')
    if listener is not None and (ca, client_cert) != (None, None):
        raise InvalidFieldsError(
            'invalid "ca"/"clientCert": client TLS options; a listener takes "listener.cert",'
            ' "listener.key", "listener.ca" and "listener.clientCa"'
        )
    address = options.get("address", "")
    if address != "" and not is_valid_address(address):
        raise InvalidFieldsError(f'invalid "address": expected an ILP address; got {address!r}')
    ildcp = _ildcp(options.get("ildcp"))
    if ildcp is not None and listener is None:
        raise InvalidFieldsError(
            'invalid "ildcp": only a listener answers ILDCP; a client asks with'
            " ilp_paychan.ildcp.fetch(plugin)"
        )
    return BtpPluginSettings(
        server=server,
        listener=listener,
        reconnect_interval=_milliseconds(
            options, "reconnectInterval", DEFAULT_RECONNECT_INTERVAL_MS
        ),
        response_timeout=_milliseconds(options, "responseTimeout", DEFAULT_RESPONSE_TIMEOUT_MS),
        ca=ca,
        client_cert=client_cert,
        client_key=client_key,
        address=address or _default_address(ildcp),
        ildcp=ildcp,
        trustline=parse_trustline_settings(options),
    )


def _default_address(ildcp: IldcpSettings | None) -> str:
    """A listener that assigns addresses is the parent: its own is the prefix it hands out."""
    if ildcp is None:
        return ""
    if ildcp.address_prefix is not None:
        return ildcp.address_prefix
    assert ildcp.client_address is not None
    parent, _, _ = ildcp.client_address.rpartition(".")
    return parent if is_valid_address(parent) else ""


def _with_credentials(server: str, account: str, token: str) -> str:
    scheme, _, rest = server.partition("://")
    user = quote(account, safe="")
    secret = quote(token, safe="")
    return f"{scheme}://{user}:{secret}@{rest}"


def _milliseconds(options: Mapping[str, Any], name: str, default: int) -> float:
    value = options.get(name)
    if value is None:
        return default / 1000
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= MAX_MILLISECONDS
    ):
        raise InvalidFieldsError(
            f'invalid "{name}": expected milliseconds above 0 and at most {MAX_MILLISECONDS};'
            f" got {value!r}"
        )
    return float(value) / 1000


def _sub_options(value: Any, name: str, known: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidFieldsError(
            f'invalid "{name}": expected an object; got {type(value).__name__}'
        )
    out: dict[str, Any] = {}
    for key, item in value.items():
        camel = _SNAKE_TO_CAMEL.get(key, key) if isinstance(key, str) else key
        if camel not in known:
            raise InvalidFieldsError(_unknown(f"{key}", known, f"{name}."))
        out[camel] = item
    return out


def _listener(value: Any) -> BtpListenerSettings | None:
    if value is None:
        return None
    options = _sub_options(value, "listener", BTP_LISTENER_OPTIONS)
    port = options.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidFieldsError(f'invalid "listener.port": expected 0..65535; got {port!r}')
    secret = options.get("secret")
    if not isinstance(secret, str) or not secret:
        raise InvalidFieldsError(
            'invalid "listener.secret": required, a non-empty string (the token clients send)'
        )
    parts: dict[str, str | None] = {}
    for attr, key in (
        ("host", "host"),
        ("cert", "cert"),
        ("key", "key"),
        ("ca", "ca"),
        ("client_ca", "clientCa"),
    ):
        part = options.get(key)
        if part is not None and not isinstance(part, str):
            raise InvalidFieldsError(f'invalid "listener.{key}": expected a string; got {part!r}')
        parts[attr] = part
    if parts["cert"] is None:
        for attr, key in (("key", "key"), ("ca", "ca"), ("client_ca", "clientCa")):
            if parts[attr] is not None:
                raise InvalidFieldsError(f'invalid "listener.{key}": needs "listener.cert" (TLS)')
    return BtpListenerSettings(port=port, secret=secret, **parts)


def _ildcp(value: Any) -> IldcpSettings | None:
    if value is None:
        return None
    options = _sub_options(value, "ildcp", ILDCP_OPTIONS)
    client_address = options.get("clientAddress")
    prefix = options.get("addressPrefix")
    if (client_address is None) == (prefix is None):
        raise InvalidFieldsError(
            'invalid "ildcp": give exactly one of "ildcp.clientAddress" (the address to assign)'
            ' and "ildcp.addressPrefix" (the client gets PREFIX.USERNAME)'
        )
    for key, address in (("clientAddress", client_address), ("addressPrefix", prefix)):
        if address is not None and not is_valid_address(address):
            raise InvalidFieldsError(
                f'invalid "ildcp.{key}": expected an ILP address (RFC 15); got {address!r}'
            )
    code = options.get("assetCode")
    if not isinstance(code, str) or not code:
        raise InvalidFieldsError(
            f'invalid "ildcp.assetCode": required, a non-empty string such as "XRP"; got {code!r}'
        )
    scale = options.get("assetScale")
    if isinstance(scale, bool) or not isinstance(scale, int) or not 0 <= scale <= 255:
        raise InvalidFieldsError(
            f'invalid "ildcp.assetScale": required, an integer from 0 to 255; got {scale!r}'
        )
    return IldcpSettings(
        asset_code=code, asset_scale=scale, client_address=client_address, address_prefix=prefix
    )


def _optional_str(options: Mapping[str, Any], name: str) -> str | None:
    value = options.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidFieldsError(f'invalid "{name}": expected a string; got {type(value).__name__}')
    return value


def _unknown(key: str, known: Iterable[str], prefix: str) -> str:
    names = sorted(f"{prefix}{name}" for name in known)
    full = f"{prefix}{key}"
    close = difflib.get_close_matches(full, names, n=1)
    if close:
        return f"unknown option {full!r} (did you mean {close[0]!r}?)"
    return f"unknown option {full!r} (known options: {', '.join(names)})"
