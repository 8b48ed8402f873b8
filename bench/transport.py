"""Round trips per second of the BTP transport alone: Message -> Response over loopback.

A listener with an echo handler and a client; `--in-flight` requests are kept outstanding on the
one socket until `--requests` have completed. By default both ends share one event loop (one
core); `--two-processes` puts the listener in a child process. Prints numbers, asserts nothing.

    .venv/bin/python bench/transport.py [--requests 50000] [--in-flight 100] [--two-processes]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time

from ilp_paychan.codec.btp import ContentType, Message, ProtocolData, Response
from ilp_paychan.transport import BtpClient, BtpListener
from ilp_paychan.transport.events import Request

SECRET = "bench_secret"


async def echo(packet: Request) -> Response:
    return Response(packet.request_id, packet.protocol_data)


async def start_listener() -> BtpListener:
    listener = BtpListener(0, "127.0.0.1", incoming_secret=SECRET, ping_interval=None)
    listener.set_request_handler(echo)
    await listener.start()
    return listener


def listener_process(port_out: multiprocessing.connection.Connection, stop_after: float) -> None:
    async def main() -> None:
        listener = await start_listener()
        port_out.send(listener.port)
        await asyncio.sleep(stop_after)
        await listener.stop()

    asyncio.run(main())


async def drive(port: int, requests: int, in_flight: int) -> float:
    client = BtpClient(f"btp+ws://:{SECRET}@127.0.0.1:{port}", ping_interval=None)
    await client.start()
    packet = Message(0, (ProtocolData("ilp", ContentType.OCTET_STREAM, b"\x01" * 64),))
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await client.request(packet)

    for _ in range(min(1000, requests // 10)):  # warm up
        await client.request(packet)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    elapsed = time.perf_counter() - started
    await client.stop()
    return elapsed


async def same_loop(requests: int, in_flight: int) -> float:
    listener = await start_listener()
    try:
        return await drive(listener.port, requests, in_flight)
    finally:
        await listener.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--two-processes", action="store_true")
    args = parser.parse_args()
    if args.two_processes:
        receiver, sender = multiprocessing.Pipe(duplex=False)
        child = multiprocessing.Process(target=listener_process, args=(sender, 120.0), daemon=True)
        child.start()
        port = receiver.recv()
        elapsed = asyncio.run(drive(port, args.requests, args.in_flight))
        child.terminate()
        child.join(5)
        mode = "client and listener in two processes"
    else:
        elapsed = asyncio.run(same_loop(args.requests, args.in_flight))
        mode = "client and listener on one event loop"
    print(f"transport round trips ({mode})")
    print(f"{'requests':>10} {'in flight':>10} {'seconds':>9} {'round trips/s':>14}")
    rate = args.requests / elapsed
    print(f"{args.requests:>10} {args.in_flight:>10} {elapsed:>9.2f} {rate:>14.0f}")


if __name__ == "__main__":
    main()
