"""The event loop the CLI (and the benches) run on, and the process-wide settings that go with it.

The loop is uvloop when it is installed (the `uvloop` extra; it is not a dependency), asyncio's
own otherwise; `ILP_PAYCHAN_LOOP=asyncio` keeps asyncio's loop even then. Since the transport
hands messages over in protocol callbacks, the loop's own cost shows per transfer, and uvloop
saved 5-8 % of CPU per fulfilled transfer at 1 and 100 in flight (A/B in bench/RESULTS.md). The
library runs on either.

Before the loop starts, `run` sets the cyclic garbage collector up for a long-running server
(`tune_gc`): it saved 3-4 % of CPU per transfer at 100 in flight, measured A/B in bench/RESULTS.md;
`ILP_PAYCHAN_GC=default` keeps CPython's settings. These are settings of the whole process, so the
library never makes them; the CLI does, for the processes it owns (`serve`, `demo`, `pay`,
`receive`, the benches).
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

#: The collector's thresholds `tune_gc` sets: a young generation a server fills in about a
#: second of traffic instead of a few milliseconds (CPython's default is 700 allocations).
GC_THRESHOLDS = (10_000, 20, 100)


def loop_factory() -> LoopFactory | None:
    """uvloop's loop constructor when installed and not declined, else None (asyncio's)."""
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


def gc_tuned() -> bool:
    """Whether `run` tunes the garbage collector: yes unless `ILP_PAYCHAN_GC=default`."""
    return os.environ.get("ILP_PAYCHAN_GC", "").strip().lower() != "default"


def tune_gc() -> None:
    """Freeze what startup made and collect the young generation less often.

    Everything alive at startup (modules, classes, functions: most of the heap) goes to the
    permanent generation, which the collector no longer walks; and a per-transfer workload,
    whose objects are almost all freed by reference counting, triggers a collection every
    10,000 net allocations instead of 700. Cyclic garbage still goes, a little later.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the loop `loop_factory` picks, after `tune_gc` unless turned off."""
    if gc_tuned():
        tune_gc()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
