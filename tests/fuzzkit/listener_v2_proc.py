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

import argparse
import asyncio
import hashlib
import json
import logging
import sys
import threading
import traceback
from typing import Any

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


class Escapes(logging.Handler):
    """Counts ERROR records and a request handler's escaped exceptions (keeps the first few)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.ERROR and "request handler failed" not in record.getMessage():
            return
        self.count += 1
        if len(self.first) < 10:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                where = traceback.extract_tb(exc.__traceback__)[-4:]
                path = " <- ".join(
                    f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in where[::-1]
                )
                text += f" | {type(exc).__name__}: {str(exc)[:300]} at {path}"
            self.first.append(f"{record.name}: {text}"[:1200])


async def serve(store: str) -> None:
    from ilp_paychan.codec import ilp4
    from ilp_paychan.v2.plugin import BtpPlugin
    from ilp_paychan.v2.trustline import Trustline

    escapes = Escapes()
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

    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[str | None] = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, line.strip())
        loop.call_soon_threadsafe(commands.put_nowait, None)

    threading.Thread(target=read_stdin, daemon=True).start()
    print(json.dumps({"port": plugin.listener_port}), flush=True)
    while (command := await commands.get()) is not None:
        if command == "report":
            print(json.dumps(await report()), flush=True)
        elif command == "connections":  # for chasing a stalled socket
            link: Any = plugin._link
            states = [
                {
                    name: repr(getattr(c, name, None))[:80]
                    for name in ("peer", "_reading", "_held", "_paused_for_slots", "_running")
                }
                | {"ws_open": c._ws.is_open, "session": c._session.state.value}
                for c in link._connections
            ]
            print(json.dumps(states), flush=True)
    final = await report()
    await plugin.disconnect()
    print(json.dumps(final), flush=True)


def main() -> None:
    """Run the listener until stdin closes."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.store))


if __name__ == "__main__":
    main()
