"""The plugin config file of `pay`, `receive`: one plugin, v1 or v2, in `serve`'s file shape.

Accepted documents:
- what `serve --config` reads (one options object, or a ledger map) with exactly one ledger of
  this package's v1 plugin: built as `Plugin(options)` behind `V1Adapter`;
- a ledger map whose one entry names ``"plugin": "ilp-plugin-btp"`` (as ilp-connector's account
  configs do), or one options object with ``"plugin": "ilp-plugin-btp"`` among its keys: built as
  `BtpPlugin(options)` (BTP 2.0).

The file is read by `config.load_settings`, as `serve` reads it (so `"store": true`, TLS paths
and the checks are the same); this module adds the one-ledger rule and the building. Errors are
`ConfigError`s, one line naming the ledger and field, secrets masked, as `serve` prints them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from ilp_paychan.shell.config import ConfigError, load_settings, make_store_dir, mask_secrets

__all__ = ["PluginSpec", "load_plugin_spec"]


@dataclass(frozen=True)
class PluginSpec:
    """The one plugin a config file describes, checked, ready to build."""

    name: str
    kind: Literal["v1", "btp"]
    options: dict[str, Any]

    def build(self) -> Any:
        """A plugin with the v2 interface (no I/O yet): `BtpPlugin`, or `V1Adapter(Plugin)`.

        Raises:
            ConfigError: the plugin's constructor refused the options (secrets masked).
        """
        from ilp_paychan.errors import PluginError

        make_store_dir(self.options.get("store"))
        try:
            if self.kind == "btp":
                from ilp_paychan.v2.plugin import BtpPlugin

                return BtpPlugin(self.options)
            from ilp_paychan import Plugin
            from ilp_paychan.v2.adapter import V1Adapter

            return V1Adapter(Plugin(self.options))
        except (PluginError, ValueError, TypeError) as exc:
            message = mask_secrets(str(exc), self.options)
            raise ConfigError(message, ledger=self.name) from None

    def listener_address(self) -> str | None:
        """The ILP address a BTP listener gives itself (`address`, or the parent of what its
        `ildcp` hands out): a listener is the parent of its link, so it cannot ask ILDCP."""
        if self.kind != "btp" or "listener" not in self.options:
            return None
        from ilp_paychan.v2.options import check_btp_options

        address = check_btp_options(self.options).address
        return address or None


def load_plugin_spec(path: str, data_dir: str) -> PluginSpec:
    """Read and check a config file that describes exactly one plugin (v1 or v2), with the
    same rules and messages as `serve --config`.

    Raises:
        ConfigError: one line naming the ledger and the field.
    """
    settings = load_settings(path, data_dir)
    ledgers = settings.ledgers
    if len(ledgers) != 1 or settings.skipped:
        names = [ledger.name for ledger in ledgers] + [name for name, _ in settings.skipped]
        raise ConfigError(
            f"config {path}: expected one ledger for this command, found "
            + ", ".join(json.dumps(name) for name in names)
        )
    ledger = ledgers[0]
    if ledger.receiver_secret is not None:
        raise ConfigError(
            "is for serve's test receiver; pay and receive use STREAM",
            ledger=ledger.name,
            field="receiverSecret",
        )
    return PluginSpec(name=ledger.name, kind=ledger.kind, options=dict(ledger.options))
