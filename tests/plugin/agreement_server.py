"""A listener Plugin in a process of its own, for tests that SIGKILL it and start it again.

    python agreement_server.py OPTIONS_JSON

It imports everything, prints `{"standby": true}` and waits for a `start` line on stdin; only then
does it connect (open its store, bind its port), so that a test can have the replacement process
ready before it kills the current one, and the outage lasts only as long as the test wants. Once
connected it prints `{"ready": PORT}`. Then every stdin line is a JSON command answered by one
`{"reply": ...}` or `{"error": [class name, message]}` line, in order:

    {"op": "send", "transfer": {...}}   send_transfer
    {"op": "get", "id": ID}             the transfer's state in the store
    {"op": "balance"}                   get_balance()

Transfer events are printed as they happen: `{"event": NAME, "id": ID}`. Logs go to stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

from ilp_paychan import Plugin

EVENTS = ("outgoing_prepare", "outgoing_fulfill", "outgoing_cancel", "outgoing_reject")


def say(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def _reporter(name: str) -> Any:
    def report(transfer: dict[str, Any], *_: Any) -> None:
        say(event=name, id=transfer["id"])

    return report


async def _run_command(plugin: Plugin, command: dict[str, Any]) -> Any:
    op = command["op"]
    if op == "send":
        await plugin.send_transfer(command["transfer"])
        return True
    if op == "get":
        return (await plugin.transfer_log.get(command["id"]))["state"]
    if op == "balance":
        return await plugin.get_balance()
    raise ValueError(f"unknown op {op!r}")


async def main(options: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    plugin = Plugin(options)
    for name in EVENTS:
        plugin.on(name, _reporter(name))
    say(standby=True)
    if (await stdin.readline()).strip() != b"start":
        return
    await plugin.connect()
    say(ready=plugin.listener_port)
    while line := await stdin.readline():
        command = json.loads(line)
        try:
            say(reply=await _run_command(plugin, command))
        except Exception as exc:
            say(error=[type(exc).__name__, str(exc)])
    await plugin.disconnect()


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    asyncio.run(main(json.loads(sys.argv[1])))
