"""The event loop the CLI (and the benches) run on: asyncio's, or uvloop when asked for.

`ILP_PAYCHAN_LOOP=uvloop` picks uvloop if it is installed (it is not a dependency). Measured on
the plugin workload it saves CPU on bare BTP round trips but not on whole transfers (see
bench/RESULTS.md "Plugin"), so the default stays asyncio's loop. The library runs on either.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory() -> LoopFactory | None:
    """uvloop's loop constructor when asked for and installed, else None (asyncio's default)."""
    if os.environ.get("ILP_PAYCHAN_LOOP", "").strip().lower() != "uvloop":
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
