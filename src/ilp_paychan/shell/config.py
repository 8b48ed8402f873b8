"""Operator configuration: one JSON document (file or `CONNECTOR_LEDGERS`) into typed settings.

Two shapes are accepted, as API.md "Command line" fixes them:
- one plugin options object (`{"listener": ..., "incomingSecret": ..., ...}`), or
- an ILP Kit ledger map `{prefix: {"currency", "plugin", "options", "store"}}`, where the map key
  becomes `options.prefix` and `"store": true` means one SQLite file per ledger under the data dir.

Every problem becomes one `ConfigError` whose text is a single line naming the ledger and the
field and saying what was expected. This module must never put a secret (incomingSecret, token,
receiverSecret, URL passwords) into an error message or a log line: values of those fields are
described only by their JSON kind, and URLs are shown through `redact_url`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

#: The ILP Kit `plugin` names this package serves (ilp-plugin-virtual takes the same options).
PLUGIN_NAMES = ("ilp-plugin-payment-channel-framework", "ilp-plugin-virtual")
DEFAULT_DATA_DIR = "ilp-paychan-data"
ENV_VAR = "CONNECTOR_LEDGERS"
_M = TypeVar("_M", bound=BaseModel)

#: Keys that mark a document as one options object rather than a ledger map.
_OPTION_KEYS = frozenset(
    {
        "listener",
        "server",
        "incomingSecret",
        "maxBalance",
        "minBalance",
        "prefix",
        "info",
        "token",
        "store",
        "_store",
        "storeKey",
        "ca",
        "clientCert",
        "clientKey",
        "requestTimeout",
        "receiverSecret",
    }
)
#: Fields whose values are never echoed, at any depth of the location path.
_SECRET_FIELDS = frozenset(
    {"incomingSecret", "token", "receiverSecret", "server", "store", "_store", "password"}
)
_INTEGER = re.compile(r"^-?[0-9]+$")
_STORE_KEY = re.compile(r"^[A-Za-z0-9_-]*$")
_PG_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_STORE_SCHEMES = ("memory:", "sqlite:///", "postgresql://", "postgres://")


class ConfigError(Exception):
    """A configuration problem; `str(error)` is one line fit for stderr."""

    def __init__(self, message: str, *, ledger: str | None = None, field: str | None = None):
        self.ledger = ledger
        self.field = field
        parts = []
        if ledger is not None:
            parts.append(f"ledger {json.dumps(ledger)}")
        if field:
            parts.append(field)
        parts.append(message)
        super().__init__(": ".join(parts).replace("\n", " "))


def redact_url(url: str) -> str:
    """The URL with any password or token in its userinfo replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None and "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _integer_string(value: Any, what: str) -> str:
    """Accepts a decimal integer string (or a JSON integer) and returns its canonical str."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"expected {what}, got {_kind(value)}")
    text = str(value)
    if not _INTEGER.match(text):
        raise ValueError(f"expected {what}, got {_show(value)}")
    return str(int(text))


def _check_store_url(url: str) -> str:
    if not url.startswith(_STORE_SCHEMES):
        raise ValueError(
            "expected a store URL (memory:, sqlite:///PATH or postgresql://...), "
            f"got a string starting {_show(url.split(':', 1)[0] + ':')}"
        )
    if url.startswith(("postgresql://", "postgres://")):
        schemas = parse_qs(urlsplit(url).query).get("schema", [])
        if any(not _PG_SCHEMA.match(schema) for schema in schemas):
            raise ValueError(
                "expected ?schema= to be a lowercase SQL identifier ([a-z_][a-z0-9_]*)"
            )
    return url


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class ListenerOptions(_Strict):
    """`options.listener`: where the server role accepts WebSockets (TLS when cert is given)."""

    port: int = Field(4195, ge=0, le=65535)
    host: str | None = None
    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    clientCa: str | None = None

    @model_validator(mode="after")
    def _tls_pair(self) -> ListenerOptions:
        if (self.cert is None) != (self.key is None):
            missing = "key" if self.key is None else "cert"
            raise ValueError(f"{missing}: required when the other of cert/key is given (TLS)")
        if self.clientCa is not None and self.cert is None:
            raise ValueError("clientCa: needs cert and key (client certificates need TLS)")
        return self


class LedgerInfo(BaseModel):
    """`options.info`: handed verbatim to clients; the typed fields are checked, others kept."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)

    prefix: str | None = None
    currencyCode: str | None = None
    currencyScale: int | None = Field(None, ge=0, le=255)
    connectors: list[str] | None = None


class PluginOptions(BaseModel):
    """The plugin options object, with the fields the shell can check before the plugin does.

    Unknown keys are kept and handed to the plugin (a payment-channel module reads its own).
    """

    model_config = ConfigDict(strict=True, extra="allow", frozen=True, populate_by_name=True)

    listener: ListenerOptions | None = None
    server: str | None = Field(None, repr=False)
    incomingSecret: SecretStr | None = None
    token: SecretStr | None = None
    maxBalance: str | None = None
    minBalance: str | None = None
    prefix: str | None = None
    info: LedgerInfo | None = None
    store: str | bool | None = Field(None, repr=False)
    store_alias: str | None = Field(None, alias="_store", repr=False)
    storeKey: str | None = None
    ca: str | None = None
    clientCert: str | None = None
    clientKey: str | None = None
    requestTimeout: float | None = Field(None, gt=0, le=3600)
    receiverSecret: SecretStr | None = None

    @field_validator("maxBalance", "minBalance", mode="before")
    @classmethod
    def _balance(cls, value: Any) -> Any:
        return None if value is None else _integer_string(value, "an integer string")

    @field_validator("server")
    @classmethod
    def _server_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in ("btp+ws", "btp+wss"):
            raise ValueError('expected a URL starting "btp+ws://" or "btp+wss://"')
        try:
            parts = urlsplit(value)
            _ = parts.port
        except ValueError:
            raise ValueError(
                "expected a URL btp+ws://:SECRET@HOST:PORT (bad host or port)"
            ) from None
        if not parts.hostname:
            raise ValueError("expected a URL btp+ws://:SECRET@HOST:PORT (no host)")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is not None and not _valid_prefix(value):
            raise ValueError(f"expected an ILP prefix ending with '.', got {_show(value)}")
        return value

    @field_validator("storeKey")
    @classmethod
    def _store_key(cls, value: str | None) -> str | None:
        if value is not None and not _STORE_KEY.match(value):
            raise ValueError(f"expected base64url characters only, got {_show(value)}")
        return value

    @field_validator("store_alias")
    @classmethod
    def _alias_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_store_url(value)

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str | bool | None) -> str | bool | None:
        return _check_store_url(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _role(self) -> PluginOptions:
        if self.listener is None and self.server is None:
            raise ValueError('expected "listener" (server role) or "server" (client role)')
        if (self.clientCert is None) != (self.clientKey is None):
            missing = "clientKey" if self.clientKey is None else "clientCert"
            raise ValueError(f"{missing}: required when the other of clientCert/clientKey is given")
        return self


class LedgerEntry(_Strict):
    """One value of an ILP Kit `CONNECTOR_LEDGERS` map."""

    currency: str | None = None
    plugin: str = PLUGIN_NAMES[0]
    options: dict[str, Any]
    store: bool | str = False
    overrideInfo: dict[str, Any] | None = None

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: bool | str) -> bool | str:
        return _check_store_url(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class LedgerSettings:
    """One ledger ready to run: its name, role and the exact options for `Plugin(...)`."""

    name: str
    options: dict[str, Any]
    store_url: str | None
    receiver_secret: bytes | None
    currency: str | None = None

    @property
    def role(self) -> Literal["listener", "client", "both"]:
        has_listener = "listener" in self.options
        has_server = "server" in self.options
        if has_listener and has_server:
            return "both"
        return "listener" if has_listener else "client"

    @property
    def stateful(self) -> bool:
        return self.store_url is not None

    def describe(self) -> dict[str, Any]:
        """Fields safe to log: no secret, URLs redacted."""
        out: dict[str, Any] = {"ledger": self.name, "role": self.role}
        if "listener" in self.options:
            listener = self.options["listener"]
            out["listen"] = f"{listener.get('host') or '0.0.0.0'}:{listener.get('port', 4195)}"
            out["tls"] = "cert" in listener
            if "clientCa" in listener:
                out["client_certificates"] = "required"
        if "server" in self.options:
            out["server"] = redact_url(self.options["server"])
        out["store"] = redact_url(self.store_url) if self.store_url else "stateless"
        return out


@dataclass(frozen=True)
class ServeSettings:
    ledgers: tuple[LedgerSettings, ...]
    skipped: tuple[tuple[str, str], ...] = ()  # (ledger, plugin name) of entries not ours


def load_document(config_path: str | None, environ: Mapping[str, str] | None = None) -> Any:
    """Reads the JSON document from the file, or from `CONNECTOR_LEDGERS` when no file is given."""
    env = os.environ if environ is None else environ
    if config_path is not None:
        source = f"config {config_path}"
        try:
            text = Path(config_path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    elif env.get(ENV_VAR):
        source = ENV_VAR
        text = env[ENV_VAR]
    else:
        raise ConfigError(f"no configuration: give --config FILE or set {ENV_VAR}")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKeyError as exc:
        raise ConfigError(f"{source}: key {json.dumps(exc.key)} appears twice") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def parse_settings(
    document: Any,
    data_dir: str | os.PathLike[str] = DEFAULT_DATA_DIR,
    base_dir: str | os.PathLike[str] | None = None,
) -> ServeSettings:
    """Validates a loaded document into settings, or raises one `ConfigError`.

    Relative TLS file paths are taken relative to `base_dir` (the config file's folder; the
    working directory when None) and must name readable files.
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if not isinstance(document, dict) or not document:
        raise ConfigError(
            "config: expected a JSON object (one options object or an ILP Kit ledger map), "
            f"got {_kind(document) if document != {} else 'an empty object'}"
        )
    data_path = Path(data_dir)
    if _OPTION_KEYS.intersection(document):
        name = document.get("prefix") if isinstance(document.get("prefix"), str) else "(options)"
        ledger = _ledger_from_options(str(name), document, None, data_path, base, "")
        return ServeSettings((ledger,))
    ledgers: list[LedgerSettings] = []
    skipped: list[tuple[str, str]] = []
    for key, raw in document.items():
        entry = _validate(LedgerEntry, raw, key, "")
        if entry.plugin not in PLUGIN_NAMES:
            skipped.append((key, entry.plugin))
            continue
        if not _valid_prefix(key):
            raise ConfigError(
                "expected the ledger key to be an ILP prefix ending with '.'", ledger=key
            )
        ledgers.append(_ledger_from_options(key, entry.options, entry, data_path, base, "options."))
    if not ledgers:
        raise ConfigError(f"config: no ledger uses plugin {json.dumps(PLUGIN_NAMES[0])}")
    _check_unique_listeners(ledgers)
    return ServeSettings(tuple(ledgers), tuple(skipped))


def load_settings(
    config_path: str | None,
    data_dir: str | os.PathLike[str] = DEFAULT_DATA_DIR,
    environ: Mapping[str, str] | None = None,
) -> ServeSettings:
    base = Path(config_path).parent if config_path is not None else None
    return parse_settings(load_document(config_path, environ), data_dir, base)


def sqlite_url_for(data_dir: Path, ledger: str) -> str:
    """The SQLite store URL `"store": true` stands for: one file per ledger in the data dir."""
    safe = re.sub(r"[^A-Za-z0-9_.~-]", "_", ledger.rstrip(".")) or "ledger"
    return "sqlite:///" + str((data_dir / f"{safe}.db").absolute())


def _ledger_from_options(
    name: str,
    raw: dict[str, Any],
    entry: LedgerEntry | None,
    data_dir: Path,
    base_dir: Path,
    where: str,
) -> LedgerSettings:
    opts = _validate(PluginOptions, raw, name, where)
    options: dict[str, Any] = dict(raw)
    if opts.listener is not None:
        listener = dict(options["listener"])
        for key in ("cert", "key", "ca", "clientCa"):
            if getattr(opts.listener, key) is not None:
                listener[key] = _tls_file(
                    base_dir, getattr(opts.listener, key), name, f"{where}listener.{key}"
                )
        options["listener"] = listener
    for key in ("ca", "clientCert", "clientKey"):
        if getattr(opts, key) is not None:
            options[key] = _tls_file(base_dir, getattr(opts, key), name, f"{where}{key}")
    if entry is not None:
        if opts.prefix is not None and opts.prefix != name:
            raise ConfigError(
                f"expected the ledger key {json.dumps(name)} (or no prefix), "
                f"got {_show(opts.prefix)}",
                ledger=name,
                field=f"{where}prefix",
            )
        options["prefix"] = name
    prefix = options.get("prefix")
    if opts.info is not None and opts.info.prefix is not None and opts.info.prefix != prefix:
        raise ConfigError(
            f"expected the ledger prefix {_show(prefix)}, got {_show(opts.info.prefix)}",
            ledger=name,
            field=f"{where}info.prefix",
        )
    if opts.server is None and (prefix is None or opts.info is None):
        missing = "prefix" if prefix is None else "info"
        raise ConfigError(
            'required for a listener without "server"', ledger=name, field=f"{where}{missing}"
        )

    if opts.listener is not None and not (
        opts.incomingSecret and opts.incomingSecret.get_secret_value()
    ):
        raise ConfigError(
            "required for a listener: without it every client is refused",
            ledger=name,
            field=f"{where}incomingSecret",
        )
    store_url = _resolve_store(name, opts, entry, data_dir, where)
    for key in ("store", "_store", "receiverSecret"):
        options.pop(key, None)
    if store_url is not None:
        options["store"] = store_url
        if opts.maxBalance is None:
            raise ConfigError(
                "required when the ledger has a store (an integer string)",
                ledger=name,
                field=f"{where}maxBalance",
            )
    for key in ("maxBalance", "minBalance"):
        value = getattr(opts, key)
        if value is not None:
            options[key] = value
    if (
        opts.maxBalance is not None
        and opts.minBalance is not None
        and (int(opts.minBalance) > int(opts.maxBalance))
    ):
        raise ConfigError(
            "expected minBalance <= maxBalance", ledger=name, field=f"{where}minBalance"
        )
    secret = opts.receiverSecret.get_secret_value().encode() if opts.receiverSecret else None
    if secret == b"":
        raise ConfigError(
            "expected a non-empty string", ledger=name, field=f"{where}receiverSecret"
        )
    return LedgerSettings(
        name=name,
        options=options,
        store_url=store_url,
        receiver_secret=secret,
        currency=entry.currency if entry is not None else None,
    )


def _tls_file(base_dir: Path, path: str, ledger: str, field: str) -> str:
    resolved = (base_dir / path).absolute()
    if not resolved.is_file():
        raise ConfigError(
            f"expected a readable PEM file, {resolved} does not exist", ledger=ledger, field=field
        )
    return str(resolved)


def _resolve_store(
    name: str, opts: PluginOptions, entry: LedgerEntry | None, data_dir: Path, where: str
) -> str | None:
    inner: str | bool | None = opts.store if opts.store is not None else opts.store_alias
    if opts.store is not None and opts.store_alias is not None:
        raise ConfigError('give "store" or "_store", not both', ledger=name, field=f"{where}_store")
    outer: str | bool | None = entry.store if entry is not None else None
    if outer not in (None, False) and inner not in (None, False):
        raise ConfigError(
            "give the store in the ledger entry or in its options, not both",
            ledger=name,
            field=f"{where}store",
        )
    chosen = inner if outer in (None, False) else outer
    if chosen is True:
        return sqlite_url_for(data_dir, name)
    if chosen is False or chosen is None:
        return None
    return chosen


def _check_unique_listeners(ledgers: list[LedgerSettings]) -> None:
    seen: dict[tuple[str, int], str] = {}
    for ledger in ledgers:
        listener = ledger.options.get("listener")
        if not listener or not listener.get("port", 4195):
            continue
        where = (listener.get("host") or "0.0.0.0", int(listener.get("port", 4195)))
        if where in seen:
            raise ConfigError(
                f"port {where[1]} is already used by ledger {json.dumps(seen[where])}",
                ledger=ledger.name,
                field="options.listener.port",
            )
        seen[where] = ledger.name


def _validate(model: type[_M], raw: Any, ledger: str, where: str) -> _M:
    if not isinstance(raw, dict):
        field = where.rstrip(".") or None
        raise ConfigError(f"expected an object, got {_kind(raw)}", ledger=ledger, field=field)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _one_line(exc, ledger, where) from None


def _one_line(exc: ValidationError, ledger: str, where: str) -> ConfigError:
    """The first pydantic error, as one line that never shows a secret value."""
    err = exc.errors(include_url=False)[0]
    loc = [str(part) for part in err["loc"]]
    if loc and loc[-1] == "store_alias":
        loc[-1] = "_store"
    secret = bool(_SECRET_FIELDS.intersection(loc))
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == "value_error":
        message = str(ctx.get("error", err["msg"]))
        # a model-level check may name a sub-field itself ("key: required when ...")
        head, sep, rest = message.partition(": ")
        if sep and re.fullmatch(r"[A-Za-z_]+", head):
            loc.append(head)
            message = rest
    elif kind == "missing":
        message = "required field is missing"
    elif kind == "extra_forbidden":
        message = "unknown field"
    else:
        expected = _EXPECTED.get(kind)
        if expected is None:
            expected = err["msg"][0].lower() + err["msg"][1:]
        elif "{" in expected:
            expected = expected.format(**ctx)
        message = f"expected {expected}, got {_kind(value) if secret else _show(value)}"
    field = where + ".".join(loc) if loc else where.rstrip(".") or None
    return ConfigError(message, ledger=ledger, field=field)


_EXPECTED = {
    "int_type": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "dict_type": "an object",
    "model_type": "an object",
    "list_type": "a list",
    "greater_than_equal": "a number >= {ge}",
    "greater_than": "a number > {gt}",
    "less_than_equal": "a number <= {le}",
}


def _valid_prefix(value: str) -> bool:
    return len(value) > 1 and value.endswith(".") and not any(c.isspace() for c in value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _show(value: Any) -> str:
    """A short JSON rendering of a value that is not secret."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = _kind(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKeyError(key)
        out[key] = value
    return out
