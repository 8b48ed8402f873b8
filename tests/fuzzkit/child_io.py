"""What the listener children (`listener_proc.py`, `listener_v2_proc.py`) share: counting the
exceptions a handler let out, and the line protocol with the driver (`sockets.ListenerChild`).

The children run as scripts, so they import this module by its bare name; the driver never
imports it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import Any


class ErrorCounter(logging.Handler):
    """Counts ERROR records (and keeps the first few): each is an exception a handler let out.

    With `also`, a WARNING whose message contains it counts too (the BTP 2.0 transport warns,
    and answers a plain F00, when a request handler raised).
    """

    def __init__(self, also: str | None = None) -> None:
        super().__init__(logging.ERROR if also is None else logging.WARNING)
        self.also = also
        self.count = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Count the record if it is one; keep its text and where it came from."""
        if record.levelno < logging.ERROR and (
            self.also is None or self.also not in record.getMessage()
        ):
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


async def answer_commands(
    port: int | None, commands: Mapping[str, Callable[[], Awaitable[Any]]]
) -> None:
    """Print `{"port": port}`, then answer each command line on stdin with one JSON line (an
    unknown command gets none) until stdin closes."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line.strip())
        loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read_stdin, daemon=True).start()
    print(json.dumps({"port": port}), flush=True)
    while (command := await lines.get()) is not None:
        handler = commands.get(command)
        if handler is not None:
            print(json.dumps(await handler()), flush=True)


def run_with_store(serve: Callable[[str], Awaitable[None]], description: str | None) -> None:
    """The children's command line: `--store URL`, then `serve(URL)` until stdin closes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--store", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.store))
