"""What the live targets (`live`, BTP 1.0; `live_v2`, BTP 2.0) share on the driving side: the
listener child process, the run's counters, and raw WebSockets to the listener.

The child is a script (`listener_proc.py`, `listener_v2_proc.py`) that prints `{"port": N}`
once listening, answers a command line on stdin with one JSON line, and on stdin's end prints a
last report and exits (see `child_io`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

WAIT = 30.0
#: Close codes a listener may send: normal, going away, text (unsupported data), policy
#: (auth refused or timed out), too big, replaced by a newer authenticated socket.
DOCUMENTED_CLOSES = {1000, 1001, 1003, 1008, 1009, 4001}


@dataclass
class SocketStats:
    """What a live run did and found: the counters both targets keep."""

    #: Failure texts longer than this are cut (None: kept whole).
    FAILURE_TEXT_LIMIT: ClassVar[int | None] = None

    frames: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    closes: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    good_sent: int = 0
    good_fulfilled: int = 0
    good_amount: int = 0
    failures: list[str] = field(default_factory=list)
    failure_count: int = 0
    rss_start_kb: int = 0
    rss_end_kb: int = 0
    rss_peak_kb: int = 0
    ledger: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def fail(self, problem: str) -> None:
        """Count a failure; the first 30 are kept for the report."""
        self.failure_count += 1
        if len(self.failures) < 30:
            limit = self.FAILURE_TEXT_LIMIT
            self.failures.append(problem if limit is None else problem[:limit])

    def check_growth(self, limit_kb: int) -> None:
        """Fail when the listener's RSS grew by more than `limit_kb` after the warm-up."""
        growth = self.rss_end_kb - self.rss_start_kb
        if growth > limit_kb:
            self.fail(f"listener memory grew by {growth} KiB (limit {limit_kb} KiB)")


class ListenerChild:
    """The listener child: start, ask for reports, read its memory, stop."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int, stderr: Path) -> None:
        self.proc = proc
        self.port = port
        self.stderr = stderr

    @classmethod
    async def start(cls, script: Path, workdir: Path) -> ListenerChild:
        """Run `script` with a SQLite store in `workdir`; return once it said its port."""
        store = f"sqlite:///{workdir / 'listener.db'}?synchronous=NORMAL"
        stderr = workdir / "listener.stderr"
        with stderr.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(script),
                "--store",
                store,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
            )
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(WAIT):
                line = await proc.stdout.readline()
            port = json.loads(line)["port"]
        except (TimeoutError, ValueError, KeyError):
            proc.kill()
            await proc.wait()
            raise RuntimeError(f"listener did not start: {stderr.read_text()[-2000:]}") from None
        return cls(proc, port, stderr)

    @property
    def alive(self) -> bool:
        """The child has not exited."""
        return self.proc.returncode is None

    def memory_kb(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) of the child in KiB, from /proc."""
        values = {"VmRSS": 0, "VmHWM": 0}
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                key, _, rest = line.partition(":")
                if key in values:
                    values[key] = int(rest.split()[0])
        return values["VmRSS"], values["VmHWM"]

    async def ask(self, command: str) -> bytes:
        """Send one command line; its answer line, unparsed (bounded by WAIT)."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()
        async with asyncio.timeout(WAIT):
            return await self.proc.stdout.readline()

    async def report(self) -> dict[str, Any]:
        """The child's counters and totals now."""
        report: dict[str, Any] = json.loads(await self.ask("report"))
        return report

    async def stop(self) -> tuple[int | None, dict[str, Any]]:
        """Close its stdin (it disconnects and prints a last report); kill it if it hangs."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        final: dict[str, Any] = {}
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.proc.stdin.close()
        try:
            async with asyncio.timeout(WAIT):
                line = await self.proc.stdout.readline()
                with contextlib.suppress(ValueError):
                    final = json.loads(line)
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            return None, final
        return self.proc.returncode, final

    async def stop_into(self, stats: SocketStats) -> None:
        """Stop the child; its last report becomes `stats.ledger`, a bad exit a failure."""
        code, final = await self.stop()
        if code != 0:
            stats.fail(f"listener exited with {code}: {self.stderr.read_text()[-2000:]}")
        stats.ledger = final


# ---------------------------------------------------------------------------- sockets


class Input(Protocol):
    """One input to write: `text`, or `binary` (in fragments cut at `cuts` when given)."""

    binary: bytes
    text: str | None
    cuts: list[int] | None


async def open_socket(port: int) -> ClientConnection:
    """A raw WebSocket to the listener on 127.0.0.1 (no compression, no size limit, no pings)."""
    return await connect(
        f"ws://127.0.0.1:{port}",
        compression=None,
        max_size=None,
        open_timeout=WAIT,
        close_timeout=2,
        ping_interval=None,
    )


async def dial(port: int, stats: SocketStats) -> ClientConnection | None:
    """`open_socket`, counted; None (and a failure) when the listener refused it."""
    try:
        ws = await open_socket(port)
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        stats.fail(f"listener refused a WebSocket connection: {exc!r}")
        return None
    stats.connections += 1
    return ws


async def send_input(ws: ClientConnection, item: Input) -> bool:
    """Write one input; False when the socket is gone already."""
    if item.text is not None:
        return await write(ws, item.text)
    if item.cuts is not None:
        raw = item.binary
        pieces = [raw[a:b] for a, b in zip([0, *item.cuts], [*item.cuts, len(raw)], strict=True)]
        return await write(ws, iter(pieces))
    return await write(ws, item.binary)


async def write(ws: ClientConnection, message: Any) -> bool:
    """`ws.send`, False when the socket is gone (closed by the listener, or reset because it
    closed while our frames were still arriving)."""
    try:
        await ws.send(message)
    except (ConnectionClosed, OSError):
        return False
    except AttributeError:
        # websockets 17 aborts the transport after a failed write; asyncio 3.11 fails to abort
        # a transport that a graceful close has already released (it forgets its loop).
        if not ws.transport.is_closing():
            raise
        return False
    return True


async def close(ws: ClientConnection) -> None:
    """`ws.close`, quiet about a socket that is gone already (see `write`)."""
    try:
        await ws.close()
    except AttributeError:
        if not ws.transport.is_closing():
            raise


def close_code(ws: ClientConnection) -> int | None:
    """The code of the close frame the listener sent, None without one."""
    received = ws.protocol.close_rcvd
    return None if received is None else received.code


def note_close(stats: SocketStats, ws: ClientConnection, *, tolerate_abnormal: bool) -> None:
    """Count how the socket ended; fail on an undocumented code, or on a drop without a close
    frame unless we made it likely (`tolerate_abnormal`: our abort or oversized message)."""
    code = close_code(ws)
    stats.closes[str(code)] += 1
    if code is None:
        if not tolerate_abnormal and ws.protocol.close_sent is None:
            stats.fail("the listener dropped a socket without a close frame")
    elif code not in DOCUMENTED_CLOSES:
        stats.fail(f"undocumented close code {code}")


def oversize_length() -> int:
    """A message length one byte above what the listener's transport accepts."""
    from ilp_paychan.transport import server as server_module

    return int(getattr(server_module, "DEFAULT_MAX_FRAME", 4 * 1024 * 1024)) + 1
