"""expiry.py: one heap, one timer, no 24.8-day limit (Node's timers have one)."""

from __future__ import annotations

import asyncio

from ilp_paychan.plugin.expiry import ExpiryScheduler


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_due_entries_fire_in_expiry_order_in_one_callback() -> None:
    fired: list[list[str]] = []
    clock = Clock()
    scheduler = ExpiryScheduler(fired.append, clock)
    scheduler.arm("b", 999.0)
    scheduler.arm("a", 998.0)
    scheduler.arm("later", 5000.0)
    await asyncio.sleep(0.01)
    assert fired == [["a", "b"]]
    assert "later" in scheduler
    assert len(scheduler) == 1
    scheduler.stop()


async def test_disarm_and_rearm_replace_earlier_entries() -> None:
    fired: list[list[str]] = []
    clock = Clock()
    scheduler = ExpiryScheduler(fired.append, clock)
    scheduler.arm("x", 1001.0)
    scheduler.disarm("x")
    scheduler.arm("y", 5000.0)
    scheduler.arm("y", 999.0)
    await asyncio.sleep(0.01)
    assert fired == [["y"]]
    assert len(scheduler) == 0


async def test_one_timer_for_many_transfers() -> None:
    clock = Clock()
    scheduler = ExpiryScheduler(lambda ids: None, clock)
    for index in range(1000):
        scheduler.arm(f"t{index}", 2000.0 + index)
    handle = scheduler._handle
    assert handle is not None
    assert scheduler._handle_at == 2000.0
    for index in range(999):
        scheduler.disarm(f"t{index}")
    assert len(scheduler._heap) < 200  # stale entries are compacted away
    scheduler.stop()


async def test_expiries_far_in_the_future_do_not_fire_early() -> None:
    """The reference's Node timers fired at once beyond ~24.8 days."""
    fired: list[list[str]] = []
    clock = Clock()
    scheduler = ExpiryScheduler(fired.append, clock)
    scheduler.arm("far", clock.now + 30 * 24 * 3600)
    await asyncio.sleep(0.01)
    assert fired == []
    clock.now += 31 * 24 * 3600
    scheduler._fire()  # what the capped wake-up does once the wall clock got there
    assert fired == [["far"]]


async def test_a_raising_callback_does_not_stop_the_scheduler() -> None:
    calls: list[list[str]] = []
    clock = Clock()

    def callback(ids: list[str]) -> None:
        calls.append(ids)
        raise RuntimeError("boom")

    scheduler = ExpiryScheduler(callback, clock)
    scheduler.arm("a", 999.0)
    await asyncio.sleep(0.01)
    scheduler.arm("b", 999.5)
    await asyncio.sleep(0.01)
    assert calls == [["a"], ["b"]]
