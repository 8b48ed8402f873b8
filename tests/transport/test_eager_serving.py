"""Incoming requests run at once up to their first suspension (`BtpConnection._serve_eagerly`),
and only a handler that suspends is carried on by a task (`_carry_on`). Whatever the handler's
shape, the peer gets the same answers as from a task per request."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ilp_paychan.codec.btp import ContentType, Message, ProtocolData, Response
from ilp_paychan.errors import PeerError
from ilp_paychan.transport import BtpListener
from ilp_paychan.transport.connection import _carry_on
from ilp_paychan.transport.events import Request

from .conftest import ClientFactory


def entry(name: str, text: str = "") -> ProtocolData:
    return ProtocolData(name, ContentType.TEXT_PLAIN_UTF8, text.encode())


async def test_handlers_that_suspend_or_not_answer_alike(
    listener: BtpListener, clients: ClientFactory
) -> None:
    loop = asyncio.get_running_loop()

    async def handler(packet: Request) -> Response:
        kind = packet.protocol_data[0].protocol_name
        if kind == "future":
            later: asyncio.Future[str] = loop.create_future()
            loop.call_later(0.01, later.set_result, "resolved")
            return Response(0, (entry("future", await later),))
        if kind in ("failing", "caught"):
            failing: asyncio.Future[str] = loop.create_future()
            loop.call_soon(failing.set_exception, ValueError("late boom"))
            try:
                await failing
            except ValueError:
                if kind == "failing":
                    raise
                return Response(0, (entry("caught", "handled"),))
        if kind == "yields":
            for _ in range(3):
                await asyncio.sleep(0)
        return Response(0, packet.protocol_data)

    listener.set_request_handler(handler)
    client = clients(listener.port)
    await client.start()
    kinds = ["inline", "future", "caught", "yields"] * 25
    answers = await asyncio.gather(*(client.request(Message(0, (entry(k),))) for k in kinds))
    expected = {
        "inline": (entry("inline"),),
        "future": (entry("future", "resolved"),),
        "caught": (entry("caught", "handled"),),
        "yields": (entry("yields"),),
    }
    assert [a.protocol_data for a in answers] == [expected[k] for k in kinds]
    with pytest.raises(PeerError) as refused:
        await client.request(Message(0, (entry("failing"),)))
    assert (refused.value.name, str(refused.value)) == ("NotAcceptedError", "late boom")
    again = await client.request(Message(0, (entry("inline"),)))
    assert again.protocol_data == (entry("inline"),)


async def started(coroutine: Any) -> asyncio.Task[None]:
    """What `_serve_eagerly` does with a coroutine that suspends on its first step."""
    waiting_on = coroutine.send(None)
    return asyncio.get_running_loop().create_task(_carry_on(coroutine, waiting_on))


async def test_carry_on_passes_results_and_errors_into_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    first: asyncio.Future[int] = loop.create_future()
    second: asyncio.Future[int] = loop.create_future()
    seen: list[object] = []

    async def body() -> None:
        seen.append(await first)
        try:
            await second
        except KeyError as exc:
            seen.append(exc)

    task = await started(body())
    first.set_result(7)
    await asyncio.sleep(0)
    problem = KeyError("x")
    second.set_exception(problem)
    await asyncio.wait_for(task, 5)
    assert seen == [7, problem]


async def test_cancelling_the_carrying_task_cancels_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    never: asyncio.Future[None] = loop.create_future()
    cleaned: list[str] = []

    async def body() -> None:
        try:
            await never
        finally:
            cleaned.append("finally ran")

    task = await started(body())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert cleaned == ["finally ran"]
    assert never.cancelled()


async def test_a_coroutine_that_ignores_a_cancellation_finishes_normally() -> None:
    loop = asyncio.get_running_loop()
    never: asyncio.Future[None] = loop.create_future()
    later: asyncio.Future[str] = loop.create_future()
    seen: list[str] = []

    async def body() -> None:
        try:
            await never
        except asyncio.CancelledError:
            seen.append("cancelled")
        loop.call_soon(later.set_result, "after")
        seen.append(await later)

    task = await started(body())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait_for(task, 5)
    assert seen == ["cancelled", "after"]
