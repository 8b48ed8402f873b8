"""The exit codes of `ilp-paychan pay` (and `receive`), one per way a payment can fail.

A module of its own, without imports, so that `ilp-paychan pay --help` can list them cheaply and a
script calling `pay` can tell a wrong pointer from a receiver that refused without reading stderr.
"""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_SPSP: Final = 3
EXIT_NO_ROUTE: Final = 4
EXIT_RATE: Final = 5
EXIT_REFUSED: Final = 6
EXIT_TIMEOUT: Final = 7
EXIT_REJECTED: Final = 8
EXIT_LINK: Final = 9
EXIT_INCOMPLETE: Final = 10

#: What each exit code of `pay` means (also printed by `pay --help`).
EXIT_CODES: Final = {
    EXIT_OK: "the whole amount was delivered",
    EXIT_FAILED: "an unexpected failure",
    EXIT_USAGE: "bad arguments or configuration (amount, rate, pointer, plugin config)",
    EXIT_SPSP: "the SPSP endpoint is unreachable or gave no valid answer",
    EXIT_NO_ROUTE: "no route to the receiver (F02)",
    EXIT_RATE: "the exchange rate is below the minimum (or could not be measured)",
    EXIT_REFUSED: "the receiver refused the money or closed the connection",
    EXIT_TIMEOUT: "the payment (or its SPSP query) did not finish in time",
    EXIT_REJECTED: "the network kept rejecting packets (liquidity or another final error)",
    EXIT_LINK: "the plugin could not connect to its peer",
    EXIT_INCOMPLETE: "the payment ended without delivering the whole amount",
}


def exit_codes_epilog() -> str:
    """The exit codes, as `pay --help` lists them."""
    return "exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items()) + "."
