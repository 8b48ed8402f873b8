"""The event loop the CLI (and the benches) run on: uvloop when it is installed, else asyncio's.

uvloop's socket transports and scheduling cost less CPU per BTP round trip than the default
loop's (see bench/RESULTS.md). The library never depends on it: every layer runs on the default
loop, and `ILP_PAYCHAN_LOOP=asyncio` forces that one here too (to compare, or to debug).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory() -> LoopFactory | None:
    """uvloop's loop constructor, or None for asyncio's default (not installed, or not wanted)."""
    if os.environ.get("ILP_PAYCHAN_LOOP", "").strip().lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: LoopFactory = uvloop.new_event_loop
    return factory


def loop_name() -> str:
    """Which loop `run` uses: "uvloop" or "asyncio"."""
    return "asyncio" if loop_factory() is None else "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the loop `loop_factory` picks."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
