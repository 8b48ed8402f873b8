"""plugin layer: the Ledger Plugin Interface over one BTP peer and one TransferLog.

- `plugin.Plugin` — the public class: lifecycle, LPI methods, events.
- `incoming` — the answers to the peer's requests (Prepare, Fulfill, Reject, Message), built
  with the collaborators it uses; `lifecycle` — the connected/connecting/closing flags it reads.
- `transfers` — the transfer state machine (who may fulfil or cancel what, and when).
- `notices` — telling the peer about settled transfers until it acknowledges.
- `expiry` — one scheduler for every prepared transfer's expiry.
- `options`, `validate`, `protocol_data`, `reasons` — options, LPI field rules, side-protocol
  mapping and rejection reasons (pure).
- `events` — `on`/`off`/`emit`, fire-and-forget.
- `hooks` — the settlement hooks a payment-channel module plugs in (`paychan`, `module_hooks`,
  `module_context`, `rpc` build those, from the `services` a Plugin lends its hooks).
"""
