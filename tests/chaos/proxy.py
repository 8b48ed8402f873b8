"""A TCP proxy on loopback that cuts a BTP-over-WebSocket link at a chosen frame.

It sits between a client plugin and a listener plugin and forwards bytes both ways. After the
HTTP upgrade it reads the WebSocket frames (RFC 6455 §5.2; client frames are masked) just enough
to see which BTP packet each carries, so a test can say "cut the link when the listener's
Fulfill goes by, before (or after) passing it on". A cut closes both TCP sockets abruptly; while
`refusing` is set, new connections are closed as soon as they arrive, keeping the link down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from ilp_paychan.codec import btp
from ilp_paychan.codec.errors import CodecError

#: Direction of a frame: from the dialling side (client) or from the listener (server).
FROM_CLIENT = "from_client"
FROM_SERVER = "from_server"


class When(Enum):
    """Cut before the matching frame is passed on, or just after."""

    BEFORE = "before"
    AFTER = "after"


@dataclass
class Cut:
    """A one-shot cut: the first frame in `direction` whose packet satisfies `matches`."""

    direction: str
    matches: Callable[[btp.Packet], bool]
    when: When
    done: asyncio.Event


def frame_length(buffer: bytes | bytearray) -> tuple[int, int, bytes | None] | None:
    """(header length, payload length, mask key) of the frame at the buffer's start, or None
    while its header is incomplete."""
    if len(buffer) < 2:
        return None
    masked = buffer[1] & 0x80
    length = buffer[1] & 0x7F
    offset = 2
    if length == 126:
        if len(buffer) < 4:
            return None
        length = int.from_bytes(buffer[2:4], "big")
        offset = 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        length = int.from_bytes(buffer[2:10], "big")
        offset = 10
    mask = None
    if masked:
        if len(buffer) < offset + 4:
            return None
        mask = bytes(buffer[offset : offset + 4])
        offset += 4
    return offset, length, mask


def packet_of(frame: bytes, header: int, mask: bytes | None) -> btp.Packet | None:
    """The BTP packet a binary data frame carries (None for anything else)."""
    if frame[0] & 0x0F != 0x2:
        return None
    payload = frame[header:]
    if mask is not None:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    try:
        return btp.decode(payload)
    except CodecError:
        return None


class CuttingProxy:
    """Listens on 127.0.0.1 (port 0) and relays every connection to `target_port`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.refusing = False
        self.connections = 0
        self.seen: list[tuple[str, btp.Packet]] = []
        self._cut: Cut | None = None
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def cut_on(
        self, direction: str, matches: Callable[[btp.Packet], bool], when: When
    ) -> asyncio.Event:
        """Arm a one-shot cut; the returned event is set once it happened."""
        done = asyncio.Event()
        self._cut = Cut(direction, matches, when, done)
        return done

    def cut_all(self) -> None:
        """Close every relayed connection at once (both sockets, no WebSocket close)."""
        for pair in list(self._links):
            for writer in pair:
                _abort(writer)
        self._links.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            _abort(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            _abort(writer)
            return
        self.connections += 1
        pair = (writer, up_writer)
        self._links.add(pair)
        for task in (
            asyncio.ensure_future(self._relay(reader, up_writer, FROM_CLIENT, pair)),
            asyncio.ensure_future(self._relay(up_reader, writer, FROM_SERVER, pair)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: str,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        buffer = bytearray()
        upgraded = False
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                buffer += chunk
                if not upgraded:
                    end = buffer.find(b"\r\n\r\n")
                    if end < 0:
                        continue
                    writer.write(bytes(buffer[: end + 4]))
                    del buffer[: end + 4]
                    upgraded = True
                while (frame := _take_frame(buffer)) is not None:
                    raw, header, mask = frame
                    if not self._pass(raw, header, mask, direction, writer, pair):
                        return
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            for side in pair:
                _abort(side)
            self._links.discard(pair)

    def _pass(
        self,
        raw: bytes,
        header: int,
        mask: bytes | None,
        direction: str,
        writer: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> bool:
        """Forward one frame unless a cut strikes; False when the link was cut."""
        packet = packet_of(raw, header, mask)
        if packet is not None:
            self.seen.append((direction, packet))
        cut = self._cut
        if (
            cut is not None
            and packet is not None
            and cut.direction == direction
            and cut.matches(packet)
        ):
            self._cut = None
            if cut.when is When.AFTER:
                writer.write(raw)
            for side in pair:
                _abort(side)
            cut.done.set()
            return False
        writer.write(raw)
        return True


def _take_frame(buffer: bytearray) -> tuple[bytes, int, bytes | None] | None:
    parsed = frame_length(buffer)
    if parsed is None:
        return None
    header, length, mask = parsed
    if len(buffer) < header + length:
        return None
    raw = bytes(buffer[: header + length])
    del buffer[: header + length]
    return raw, header, mask


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close a socket at once: an AFTER cut's last frame is flushed by the transport first."""
    with contextlib.suppress(Exception):
        writer.close()
