"""Example settlement module: claims on a simulated unidirectional Ed25519 payment channel.

`claim_channel.module` is the module to give `make_payment_channel_plugin`; `claims` holds the
signing rules and `ledger` the simulated on-ledger channels. docs/modules.md walks through it.
"""
