"""Operator configuration: one JSON document (file or `CONNECTOR_LEDGERS`) into typed settings.

Two shapes are accepted, as the ILP Kit of the reference's time wrote them:
- one plugin options object (`{"listener": ..., "incomingSecret": ..., ...}`), or
- an ILP Kit ledger map `{prefix: {"currency", "plugin", "options", "store"}}`, where the map key
  becomes `options.prefix` and `"store": true` means one SQLite file per ledger under the data dir.

An entry (or an options object) with `"plugin": "ilp-plugin-btp"`, as ilp-connector's account
configs name it, is a v2 ledger: its options are `BtpPlugin`'s (BTP 2.0), checked by building
one, and its key is only a name (not a prefix).

This module checks only what belongs to the config file itself: its JSON, the ledger map's
entries and plugin names, `"store": true`, the shell's own `receiverSecret`, TLS file paths
(relative to the config file's folder) and listener ports used twice. The plugin options are
checked by the plugin's own validation (`plugin.options.check_options`), so `serve --config` and
`Plugin(...)` refuse the same options with the same message.

Every problem becomes one `ConfigError` whose text is a single line naming the ledger and the
field and saying what was expected. This module must never put a secret (incomingSecret, token,
receiverSecret, URL passwords) into an error message or a log line: values of those fields are
described only by their JSON kind, and URLs are shown through `redact_url`.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ilp_paychan.describe import clip, json_kind
from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.ledger.store_url import check_store_url, redact_url
from ilp_paychan.plugin.options import PLUGIN_OPTIONS, check_options

__all__ = [
    "ConfigError",
    "LedgerSettings",
    "ServeSettings",
    "load_document",
    "load_settings",
    "make_store_dir",
    "mask_secrets",
    "parse_settings",
    "redact_url",
]

#: The ILP Kit `plugin` names this package serves (ilp-plugin-virtual takes the same options).
PLUGIN_NAMES = ("ilp-plugin-payment-channel-framework", "ilp-plugin-virtual")
#: The `plugin` names served as a `BtpPlugin` (BTP 2.0), as ilp-connector's account configs say.
V2_PLUGIN_NAMES = ("ilp-plugin-btp",)
DEFAULT_DATA_DIR = "ilp-paychan-data"
ENV_VAR = "CONNECTOR_LEDGERS"
_M = TypeVar("_M", bound=BaseModel)

#: The shell's own option: the secret of a test receiver (see serve.py); never a plugin option.
RECEIVER_SECRET = "receiverSecret"
#: Keys that mark a document as one options object rather than a ledger map.
_OPTION_KEYS = PLUGIN_OPTIONS | {RECEIVER_SECRET}
#: Fields whose values are never echoed, at any depth of the location path.
_SECRET_FIELDS = frozenset(
    {
        "incomingSecret",
        "token",
        "receiverSecret",
        "server",
        "store",
        "_store",
        "password",
        "secret",
        "btpToken",
    }
)


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


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


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
        if isinstance(value, str):
            check_store_url(value)
        return value


@dataclass(frozen=True)
class LedgerSettings:
    """One ledger ready to run: its name, role and the exact options for `Plugin(...)`."""

    name: str
    options: dict[str, Any]
    store_url: str | None
    receiver_secret: bytes | None
    currency: str | None = None
    #: "v1": this package's `Plugin` (BTP 1.0 trustline); "btp": a `BtpPlugin` (BTP 2.0).
    kind: Literal["v1", "btp"] = "v1"

    @property
    def role(self) -> Literal["listener", "client", "both"]:
        """Whether the ledger listens, dials a server, or (both options given) does both."""
        has_listener = "listener" in self.options
        has_server = "server" in self.options
        if has_listener and has_server:
            return "both"
        return "listener" if has_listener else "client"

    @property
    def stateful(self) -> bool:
        """Whether the ledger has a store (else it runs stateless)."""
        return self.store_url is not None

    def describe(self) -> dict[str, Any]:
        """Fields safe to log: no secret, URLs redacted."""
        out: dict[str, Any] = {"ledger": self.name, "role": self.role}
        if self.kind == "btp":
            out["plugin"] = V2_PLUGIN_NAMES[0]
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
    """What `serve` runs: the ledgers using this plugin, and the other entries it skipped."""

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
            f"got {json_kind(document) if document != {} else 'an empty object'}"
        )
    data_path = Path(data_dir)
    if document.get("plugin") in V2_PLUGIN_NAMES:
        options = {key: value for key, value in document.items() if key != "plugin"}
        return ServeSettings((_btp_ledger("(options)", options, None, data_path, base, ""),))
    if _OPTION_KEYS.intersection(document):
        name = document.get("prefix") if isinstance(document.get("prefix"), str) else "(options)"
        ledger = _ledger_from_options(str(name), document, None, data_path, base, "")
        return ServeSettings((ledger,))
    ledgers: list[LedgerSettings] = []
    skipped: list[tuple[str, str]] = []
    for key, raw in document.items():
        entry = _validate(LedgerEntry, raw, key, "")
        if entry.plugin in V2_PLUGIN_NAMES:
            ledgers.append(_btp_ledger(key, entry.options, entry, data_path, base, "options."))
            continue
        if entry.plugin not in PLUGIN_NAMES:
            skipped.append((key, entry.plugin))
            continue
        ledgers.append(_ledger_from_options(key, entry.options, entry, data_path, base, "options."))
    if not ledgers:
        found = ", ".join(f"{json.dumps(name)} ({plugin})" for name, plugin in skipped)
        *first, last = (json.dumps(name) for name in (*PLUGIN_NAMES, *V2_PLUGIN_NAMES))
        served = f"{', '.join(first)} or {last}"
        raise ConfigError(
            f"config: no ledger uses plugin {served}; found {len(skipped)} ledger(s) with other"
            f" plugins: {found}"
        )
    _check_unique_listeners(ledgers)
    return ServeSettings(tuple(ledgers), tuple(skipped))


def load_settings(
    config_path: str | None,
    data_dir: str | os.PathLike[str] = DEFAULT_DATA_DIR,
    environ: Mapping[str, str] | None = None,
) -> ServeSettings:
    """Read and validate the config file (or `CONNECTOR_LEDGERS`); raises one `ConfigError`.

    Relative TLS paths are taken from the config file's folder.
    """
    base = Path(config_path).parent if config_path is not None else None
    return parse_settings(load_document(config_path, environ), data_dir, base)


def sqlite_url_for(data_dir: Path, ledger: str) -> str:
    """The SQLite store URL `"store": true` stands for: one file per ledger in the data dir."""
    safe = re.sub(r"[^A-Za-z0-9_.~-]", "_", ledger.rstrip(".")) or "ledger"
    return "sqlite:///" + str((data_dir / f"{safe}.db").absolute())


def make_store_dir(url: object) -> None:
    """Create the folder of a `sqlite:///` store URL if missing (as `"store": true` names a
    file in the data dir, which may not exist yet); a folder that cannot be made is left for
    the store's own open to report."""
    if isinstance(url, str) and url.startswith("sqlite:///"):
        with contextlib.suppress(OSError):
            Path(url[len("sqlite:///") :].split("?", 1)[0]).parent.mkdir(
                parents=True, exist_ok=True
            )


def _ledger_from_options(
    name: str,
    raw: dict[str, Any],
    entry: LedgerEntry | None,
    data_dir: Path,
    base_dir: Path,
    where: str,
) -> LedgerSettings:
    """One ledger: the shell's own keys taken out, the plugin's validation run on the rest."""
    options: dict[str, Any] = dict(raw)
    secret = _receiver_secret(options.pop(RECEIVER_SECRET, None), name, where)
    store_url = _resolve_store(name, options, entry, data_dir, where)
    if store_url is not None:
        options["store"] = store_url
    if entry is not None:
        prefix = options.get("prefix")
        if prefix is not None and prefix != name:
            raise ConfigError(
                f"expected the ledger key {json.dumps(name)} (or no prefix), got {_show(prefix)}",
                ledger=name,
                field=f"{where}prefix",
            )
        options["prefix"] = name
    try:
        check_options(options)
    except InvalidFieldsError as exc:
        # The plugin may echo a bad value; a secret pasted into the wrong field stays hidden.
        message = mask_secrets(str(exc), raw)
        raise ConfigError(message, ledger=name, field=where.rstrip(".") or None) from None
    for key in ("maxBalance", "minBalance"):
        if isinstance(options.get(key), int):
            options[key] = str(options[key])
    _resolve_tls_files(options, base_dir, name, where)
    return LedgerSettings(
        name=name,
        options=options,
        store_url=store_url if isinstance(store_url, str) else None,
        receiver_secret=secret,
        currency=entry.currency if entry is not None else None,
    )


def _btp_ledger(
    name: str,
    raw: dict[str, Any],
    entry: LedgerEntry | None,
    data_dir: Path,
    base_dir: Path,
    where: str,
) -> LedgerSettings:
    """One v2 ledger: the shell's own keys taken out, `BtpPlugin`'s validation run on the rest.

    `store` (in the entry or in the options, not both) is passed to the plugin as a URL,
    `true` becoming the ledger's SQLite file; everything else goes to the plugin untouched.
    """
    options: dict[str, Any] = dict(raw)
    secret = _receiver_secret(options.pop(RECEIVER_SECRET, None), name, where)
    chosen = _pick_store(name, options.pop("store", None), entry, data_dir, where)
    if chosen is not None:
        options["store"] = chosen
    try:
        _build_btp_plugin(options)
    except (InvalidFieldsError, ValueError, TypeError) as exc:
        message = mask_secrets(str(exc), raw)
        raise ConfigError(message, ledger=name, field=where.rstrip(".") or None) from None
    _resolve_tls_files(options, base_dir, name, where)
    return LedgerSettings(
        name=name,
        options=options,
        store_url=chosen if isinstance(chosen, str) else None,
        receiver_secret=secret,
        currency=entry.currency if entry is not None else None,
        kind="btp",
    )


def _build_btp_plugin(options: Mapping[str, Any]) -> Any:
    """A `BtpPlugin` (no I/O): its constructor is the one validation of v2 options, including
    what later layers add to them, so the config refuses exactly what the plugin refuses."""
    from ilp_paychan.v2.plugin import BtpPlugin

    return BtpPlugin(options)


def mask_secrets(text: str, options: Mapping[str, Any]) -> str:
    """`text` with every secret of a ledger's options (its incomingSecret, token,
    receiverSecret, a v2 plugin's btpToken and listener.secret, and URL passwords, also
    percent-decoded) replaced by `***`.

    Secrets shorter than 4 characters are left alone: masking every "a" of a message would
    make it unreadable and hide nothing worth hiding.
    """
    found: set[str] = set()
    listener = options.get("listener")
    nested = listener.get("secret") if isinstance(listener, Mapping) else None
    for value in (*(options.get(key) for key in _SECRET_OPTIONS), nested):
        if isinstance(value, str) and value:
            found.add(value)
    for key in ("server", "store", "_store"):
        url = options.get(key)
        if isinstance(url, str):
            try:
                password = urlsplit(url).password
            except ValueError:
                continue
            if password:
                found.update({password, unquote(password)})
    for secret in sorted(found, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


_SECRET_OPTIONS = ("incomingSecret", "token", "btpToken", RECEIVER_SECRET)


def _receiver_secret(value: Any, ledger: str, where: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(
            f"expected a non-empty string, got {json_kind(value)}",
            ledger=ledger,
            field=f"{where}{RECEIVER_SECRET}",
        )
    return value.encode()


def _resolve_tls_files(options: dict[str, Any], base_dir: Path, ledger: str, where: str) -> None:
    """TLS paths relative to the config file's folder become absolute; each must exist."""
    listener = options.get("listener")
    if isinstance(listener, dict):
        listener = dict(listener)
        for key in ("cert", "key", "ca", "clientCa"):
            if isinstance(listener.get(key), str):
                listener[key] = _tls_file(base_dir, listener[key], ledger, f"{where}listener.{key}")
        options["listener"] = listener
    for key in ("ca", "clientCert", "clientKey"):
        if isinstance(options.get(key), str):
            options[key] = _tls_file(base_dir, options[key], ledger, f"{where}{key}")


def _tls_file(base_dir: Path, path: str, ledger: str, field: str) -> str:
    resolved = (base_dir / path).absolute()
    if not resolved.is_file():
        raise ConfigError(
            f"expected a readable PEM file, {resolved} does not exist", ledger=ledger, field=field
        )
    return str(resolved)


def _resolve_store(
    name: str, options: dict[str, Any], entry: LedgerEntry | None, data_dir: Path, where: str
) -> Any:
    """The store the ledger uses: `true` becomes its SQLite file, `false` none.

    Takes `store`/`_store` out of `options`; anything that is neither a boolean nor a string is
    returned as is for the plugin's validation to refuse.
    """
    if options.get("store") is not None and options.get("_store") is not None:
        raise ConfigError('give "store" or "_store", not both', ledger=name, field=f"{where}_store")
    inner = options.pop("store", None)
    alias = options.pop("_store", None)
    return _pick_store(name, alias if inner is None else inner, entry, data_dir, where)


def _pick_store(
    name: str, inner: Any, entry: LedgerEntry | None, data_dir: Path, where: str
) -> Any:
    """The one store of a ledger given in its entry or (`inner`) in its options: `true`
    becomes its SQLite file, `false` or none None, anything else is returned as is."""
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
    if chosen is False:
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
        raise ConfigError(f"expected an object, got {json_kind(raw)}", ledger=ledger, field=field)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _one_line(exc, ledger, where, sorted(model.model_fields)) from None


def _one_line(exc: ValidationError, ledger: str, where: str, fields: list[str]) -> ConfigError:
    """The first pydantic error, as one line that never shows a secret value."""
    err = exc.errors(include_url=False)[0]
    loc = [str(part) for part in err["loc"]]
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
        close = difflib.get_close_matches(loc[-1], fields, n=1) if loc else []
        message = f"unknown field (did you mean {close[0]!r}?)" if close else "unknown field"
    else:
        expected = _EXPECTED.get(kind)
        if expected is None:
            expected = err["msg"][0].lower() + err["msg"][1:]
        elif "{" in expected:
            expected = expected.format(**ctx)
        message = f"expected {expected}, got {json_kind(value) if secret else _show(value)}"
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


def _show(value: Any) -> str:
    """A short JSON rendering of a value that is not secret."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = json_kind(value)
    return clip(text, 40)


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
