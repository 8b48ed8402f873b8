"""What an operator's observer (the shell's metrics) may learn from a `BtpPlugin`.

Every method is optional: the plugin looks them up once, in `add_observer`, and calls only those
an observer has, synchronously on the packet path, so they must be fast and must not raise (an
exception is logged and dropped).

- `packet(direction, kind, code)`: one packet. `direction` is "incoming" for a Prepare the peer
  sent us and for our answer to it, "outgoing" for a Prepare we sent and the answer we got;
  for money, "incoming" is a Transfer received and "outgoing" one sent. `kind` is one of
  PACKET_KINDS; `code` is the ILP error code of a Reject, else "".
- `round_trip(kind, seconds)`: time from sending a BTP request to its answer ("data" for a
  Prepare, "money" for a Transfer); only answered requests are timed.
- `link_changed(up)`: the authenticated socket to the peer came up or went down.
"""

from __future__ import annotations

from typing import Final, Protocol

#: The `kind` values of `packet()`.
PACKET_KINDS: Final = ("prepare", "fulfill", "reject", "money")
#: The `direction` values of `packet()`.
DIRECTIONS: Final = ("incoming", "outgoing")


class PacketObserver(Protocol):
    """The full observer; a real one may implement any subset of these methods."""

    def packet(self, direction: str, kind: str, code: str) -> None:
        """One packet of `kind` went by in `direction` (`code`: a Reject's, else "")."""

    def round_trip(self, kind: str, seconds: float) -> None:
        """A request of `kind` ("data" or "money") was answered after `seconds`."""

    def link_changed(self, up: bool) -> None:
        """The authenticated socket came up (True) or went down (False)."""
