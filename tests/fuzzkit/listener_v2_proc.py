"""The BTP 2.0 listener under fuzz, a child process so its memory can be measured alone.

A `BtpPlugin` listener on 127.0.0.1 with the durable trustline on SQLite. Its data handler
fulfils a Prepare whose data starts with `GOOD` and whose condition is that of
`fulfillment_v2(data)` (the well-behaved clients build theirs that way), and rejects everything
else with F99. It counts what its handlers saw, every log record of level ERROR, every warning of
a request handler that let an exception out (the transport then answers a plain F00), and the
plugin's `error` events; and answers on stdout:

    python tests/fuzzkit/listener_v2_proc.py --store sqlite:///path.db
    -> {"port": 4711}                  once listening
    <- report                          (a line on stdin)
    -> {"balance": {...}, ...}         the trustline's balance and the counters
    stdin closed -> final report, disconnect, exit 0
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import Any

try:
    from .child_io import ErrorCounter, answer_commands, run_with_store
except ImportError:  # run as a script, as the driver starts it
    from child_io import (  # type: ignore[no-redef]
        ErrorCounter,
        answer_commands,
        run_with_store,
    )

SECRET = "fuzz_v2_secret"
ADDRESS = "test.fuzz"
GOOD = b"fuzzkit-v2-good:"
#: A Prepare whose handler outlives the connection's grace period after its socket closes.
SLOW = b"fuzzkit-v2-slow:"
SLOW_SECONDS = 5.0
#: Wide limits: the junk Transfers and Prepares must not make a good packet fail on a limit.
LIMIT = 10**15


def fulfillment_v2(amount: int, expires: str, destination: str, data: bytes) -> bytes:
    """The preimage the listener reveals for a well-behaved Prepare: bound to every field but
    the condition, so that a mutated copy of a good Prepare is never fulfilled as a new one."""
    fields = f"{amount} {expires} {destination} ".encode()
    return hashlib.sha256(b"fuzzkit v2 fulfillment " + fields + data).digest()


def condition_v2(amount: int, expires: str, destination: str, data: bytes) -> bytes:
    """The execution condition of a well-behaved Prepare with these fields."""
    return hashlib.sha256(fulfillment_v2(amount, expires, destination, data)).digest()


def expiry_key(moment: Any) -> str:
    """The expiry as the fulfillment binds it (ILPv4 has millisecond precision)."""
    return f"{moment.timestamp():.3f}"


async def serve(store: str) -> None:
    from ilp_paychan.codec import ilp4
    from ilp_paychan.v2.plugin import BtpPlugin
    from ilp_paychan.v2.trustline import Trustline

    escapes = ErrorCounter(also="request handler failed")
    logging.getLogger().addHandler(escapes)
    logging.getLogger().setLevel(logging.WARNING)
    plugin = BtpPlugin(
        {
            "listener": {"port": 0, "host": "127.0.0.1", "secret": SECRET},
            "address": ADDRESS,
            "ildcp": {"addressPrefix": ADDRESS, "assetCode": "XFZ", "assetScale": 0},
            "balance": {"maximum": str(LIMIT), "minimum": str(-LIMIT)},
            "store": store,
            "responseTimeout": 5000,
        }
    )
    counters: dict[str, Any] = {"fulfilled": 0, "rejected": 0, "money": 0, "money_count": 0}
    events: list[str] = []

    async def on_data(raw: bytes) -> bytes:
        prepare = ilp4.decode_prepare(raw)
        data = prepare.data
        fields = (prepare.amount, expiry_key(prepare.expires_at), prepare.destination, data)
        if data.startswith(GOOD) and prepare.execution_condition == condition_v2(*fields):
            counters["fulfilled"] += 1
            return ilp4.encode_fulfill(ilp4.IlpFulfill(fulfillment_v2(*fields), b"ok"))
        if data.startswith(SLOW):
            counters["slow"] = counters.get("slow", 0) + 1
            await asyncio.sleep(SLOW_SECONDS)
        counters["rejected"] += 1
        return ilp4.encode_reject(ilp4.IlpReject("F99", ADDRESS, "not a good packet"))

    async def on_money(amount: str) -> None:
        counters["money"] += int(amount)
        counters["money_count"] += 1

    def on_error(exc: BaseException) -> None:
        if len(events) < 10:
            events.append(f"{type(exc).__name__}: {str(exc)[:300]}")
        counters["error_events"] = counters.get("error_events", 0) + 1

    plugin.register_data_handler(on_data)
    plugin.register_money_handler(on_money)
    plugin.on("error", on_error)
    await plugin.connect()
    trustline = plugin.accounting
    assert isinstance(trustline, Trustline)

    async def report() -> dict[str, Any]:
        return {
            "balance": await trustline.get_balance(),
            **counters,
            "handling": len(trustline._handling),
            "sending": len(trustline._sending),
            "unresolved": len(trustline._unresolved),
            "tasks": len(asyncio.all_tasks()),
            "errors_logged": escapes.count,
            "first_errors": escapes.first,
            "error_events": counters.get("error_events", 0),
            "first_events": events,
        }

    async def connections() -> list[dict[str, Any]]:
        """The listener's sockets' states: for chasing a stalled socket."""
        link: Any = plugin._link
        return [
            {
                name: repr(getattr(c, name, None))[:80]
                for name in ("peer", "_reading", "_held", "_paused_for_slots", "_running")
            }
            | {"ws_open": c._ws.is_open, "session": c._session.state.value}
            for c in link._connections
        ]

    await answer_commands(plugin.listener_port, {"report": report, "connections": connections})
    final = await report()
    await plugin.disconnect()
    print(json.dumps(final), flush=True)


if __name__ == "__main__":
    run_with_store(serve, __doc__)
