"""Ending what a test made: fixtures hand out factories and stop everything built at the end."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

Made = TypeVar("Made")


@contextlib.asynccontextmanager
async def ending_each(
    made: list[Made], end: Callable[[Made], Awaitable[object]]
) -> AsyncIterator[None]:
    """On leaving, `end` each item of `made` in order (the list as it is then, so what the test
    added meanwhile is ended too), whether the body raised or not."""
    try:
        yield
    finally:
        for item in made:
            await end(item)
