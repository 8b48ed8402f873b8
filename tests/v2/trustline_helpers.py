"""Helpers of the trustline tests: reading a plugin's balance."""

from __future__ import annotations

from ilp_paychan.v2.plugin import BtpPlugin
from ilp_paychan.v2.trustline import Trustline


def trustline_of(plugin: BtpPlugin) -> Trustline:
    """The plugin's trustline (the test fails if it has none)."""
    accounting = plugin.accounting
    assert isinstance(accounting, Trustline)
    return accounting


async def balance_of(plugin: BtpPlugin) -> dict[str, str]:
    """`Trustline.get_balance()` of the plugin."""
    return await trustline_of(plugin).get_balance()
