"""Bounded polling for tests: wait until something holds, or fail naming what never happened."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def wait_until(predicate: Callable[[], Any], what: str, limit: float) -> None:
    """Poll a sync or async predicate every 10 ms until true; AssertionError after `limit` s."""
    try:
        async with asyncio.timeout(limit):
            while True:
                result = predicate()
                if asyncio.iscoroutine(result):
                    result = await result
                if result:
                    return
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None
