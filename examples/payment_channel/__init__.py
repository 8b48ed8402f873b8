"""Example settlement module: unconditional payments on a simulated ledger, identified by txid.

`payment_channel.module` is the module to give `make_payment_channel_plugin`; `ledger` is the
simulated settlement ledger (accounts and payments). docs/modules.md walks through it.
"""
