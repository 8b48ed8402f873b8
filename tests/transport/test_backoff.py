"""Reconnect delays: the Backoff rule alone, then a real client finding a restarted listener."""

from __future__ import annotations

import asyncio
import random

import pytest

from ilp_paychan.codec.btp import Message, Response
from ilp_paychan.transport import BtpClient, BtpListener
from ilp_paychan.transport.backoff import Backoff
from ilp_paychan.transport.events import Request

from .conftest import LOOPBACK, SECRET, eventually


def delays(backoff: Backoff, count: int) -> list[float]:
    return [backoff.next_delay() for _ in range(count)]


def test_the_first_attempt_is_immediate_then_windows_double_up_to_the_cap() -> None:
    backoff = Backoff(0.05, 1.0, rng=random.Random(7))
    waits = delays(backoff, 12)
    assert waits[0] == 0.0
    windows = [min(1.0, 0.05 * 2**n) for n in range(11)]
    for wait, window in zip(waits[1:], windows, strict=True):
        assert window / 2 <= wait <= window
    assert max(waits) <= 1.0
    assert len(set(waits[6:])) == len(waits[6:])  # jittered at the cap, not a fixed period


def test_jitter_spreads_clients_that_lost_the_same_peer() -> None:
    fifth = {Backoff(0.05, 1.0, rng=random.Random(seed)).next_delay() for seed in range(20)}
    assert fifth == {0.0}  # everybody tries at once first...
    later = set()
    for seed in range(20):
        backoff = Backoff(0.05, 1.0, rng=random.Random(seed))
        later.add(delays(backoff, 8)[-1])
    assert len(later) == 20  # ...then they spread out


def test_a_stable_session_resets_the_sequence_and_a_flapping_one_does_not() -> None:
    backoff = Backoff(0.05, 1.0, rng=random.Random(1))
    delays(backoff, 5)
    backoff.session_ended(lasted=0.2)  # accepted, then dropped at once: keep widening
    assert 0.4 <= backoff.next_delay() <= 0.8
    backoff.session_ended(lasted=30.0)
    assert backoff.next_delay() == 0.0
    assert 0.025 <= backoff.next_delay() <= 0.05


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="initial"):
        Backoff(0.0, 1.0)
    with pytest.raises(ValueError, match="initial"):
        Backoff(2.0, 1.0)


class RecordingBackoff(Backoff):
    """The default rule, with each wait written down."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def next_delay(self) -> float:
        wait = super().next_delay()
        self.waits.append(wait)
        return wait


@pytest.mark.timeout(60)
async def test_a_restarted_listener_is_found_again_within_a_second_or_so() -> None:
    listener = BtpListener(0, LOOPBACK, incoming_secret=SECRET)
    await listener.start()

    async def answer(packet: Request) -> Response:
        return Response(0, ())

    listener.set_request_handler(answer)
    backoff = RecordingBackoff()
    client = BtpClient(f"btp+ws://:{SECRET}@{LOOPBACK}:{listener.port}", backoff=backoff)
    states: list[bool] = []
    client.on_state_change(states.append)
    loop = asyncio.get_running_loop()
    try:
        await client.start()
        await listener.stop()
        await eventually(lambda: states == [True, False], "client noticed the drop")
        await asyncio.sleep(2.0)  # the outage
        during_outage = list(backoff.waits)
        restarted = loop.time()
        await listener.start()
        await eventually(lambda: states == [True, False, True], "client back", limit=10.0)
        back_after = loop.time() - restarted
        await client.request(Message(0, ()))
    finally:
        await client.stop()
        await listener.stop()
    print(f"client back {back_after:.3f} s after the listener restarted")
    # The rule, not the clock: an immediate first redial, no wait over the 1 s cap, and a
    # handful of attempts in a 2 s outage (no hammering).
    assert during_outage[0] == 0.0
    assert all(wait <= 1.0 for wait in backoff.waits)
    assert 3 <= len(during_outage) <= 12
    assert back_after < 5.0  # generous: about 1 s expected, the machine is shared


async def test_fresh_start_dials_at_once_even_after_a_long_outage_before() -> None:
    listener = BtpListener(0, LOOPBACK, incoming_secret=SECRET)
    await listener.start()
    backoff = RecordingBackoff()
    client = BtpClient(f"btp+ws://:{SECRET}@{LOOPBACK}:{listener.port}", backoff=backoff)
    try:
        backoff.attempts = 20  # as if many attempts had failed before a stop()
        await client.start()
        assert backoff.attempts == 0
        await listener.stop()
        await eventually(lambda: backoff.waits[:1] == [0.0], "an immediate redial")
        await listener.start()
        await eventually(client.is_open, "client back")
    finally:
        await client.stop()
        await listener.stop()
