"""Summarise a py-spy profile (`record --format raw --native --threads`): where the CPU goes.

py-spy in native mode also samples threads that wait (for the GIL, a lock, epoll, the disk), so
samples whose innermost frames are such a wait are counted apart, and the areas are shares of
the rest, the samples on the CPU. Each of those is given to an area: walking from the innermost
frame outwards, the first frame that names one (a Python file of a known package, or a native
library such as SQLite's) decides, so time in CPython's own C code counts for the Python code
that called it. Also listed: the innermost Python functions, each thread's share, a few native
calls worth knowing about (the kernel's random bytes for frame masks, socket I/O) and the time
in the cyclic garbage collector.

Caveat: to read native stacks py-spy stops the process for each sample, which catches threads in
system calls more often than their share of the CPU; lines made of one system call are upper
bounds.

    .venv/bin/python bench/_profile.py PROFILE.txt
"""

from __future__ import annotations

import re
import sys
from collections import Counter

#: (area, pattern on a frame's location), first match wins within a frame.
AREAS = [
    ("ledger", re.compile(r"ilp_paychan/ledger/")),
    ("plugin", re.compile(r"ilp_paychan/plugin/")),
    ("transport", re.compile(r"ilp_paychan/transport/")),
    ("codec", re.compile(r"ilp_paychan/codec/")),
    ("ilp_paychan, other", re.compile(r"ilp_paychan/")),
    ("sqlite3 (C)", re.compile(r"libsqlite3|_sqlite3\.|^(cursor|connection|statement)\.c")),
    ("sqlite3 module", re.compile(r"(^|/)sqlite3/")),
    ("asyncpg", re.compile(r"asyncpg")),
    ("websockets", re.compile(r"(^|/)websockets/")),
    ("json", re.compile(r"(^|/)json/|^_json\.")),
    (
        "executor and threads",
        re.compile(r"concurrent/futures/|(^|/)threading\.py|(^|/)queue\.py|^_queuemodule"),
    ),
    (
        "asyncio loop",
        re.compile(
            r"(^|/)asyncio/|(^|/)selectors\.py|(^|/)socket\.py|^_asynciomodule|^selectmodule"
            r"|^socketmodule"
            r"|uvloop"
        ),
    ),
    ("uuid, datetime", re.compile(r"(^|/)uuid\.py|datetime")),
    ("benchmark peer", re.compile(r"transfer_peer\.py|_harness\.py")),
]
#: Waits, recognised in the innermost four frames: (label, pattern on a frame's name).
WAITS = [
    ("waiting: fsync (the disk)", re.compile(r"^f(data)?sync$")),
    ("waiting: epoll (idle loop)", re.compile(r"^epoll_wait$|^select_epoll_poll")),
    (
        "waiting: GIL or a lock",
        re.compile(
            r"^pthread_cond_(timed)?wait|^sem_(timed|clock)?wait|^take_gil|futex"
            r"|^PyThread_acquire_lock"
        ),
    ),
]
NATIVE = {
    "getrandom (frame masks, ids)": re.compile(r"^getrandom\b"),
    "socket send": re.compile(r"^(__)?(send|sendto|sendmsg|write|__libc_write)\b"),
    "socket receive": re.compile(r"^(__)?(recv|recvfrom|recvmsg|read|__libc_read)\b"),
    "epoll_wait": re.compile(r"^epoll_wait\b"),
}
FRAME = re.compile(r"^(?P<name>.*?) \((?P<where>[^()]*)\)$")
PY_LOCATION = re.compile(r"\.py:\d+$")


def _frames(stack: str) -> list[tuple[str, str]]:
    frames = []
    for text in stack.split(";"):
        match = FRAME.match(text)
        frames.append((match["name"], match["where"]) if match else (text, ""))
    return frames


def _area(frames: list[tuple[str, str]]) -> str:
    for _name, where in reversed(frames):
        for area, pattern in AREAS:
            if pattern.search(where):
                return area
    return "other (interpreter, startup)"


def _wait(frames: list[tuple[str, str]]) -> str | None:
    for name, _where in frames[-4:]:
        for label, pattern in WAITS:
            if pattern.search(name):
                return label
    return None


def summarise(raw: str, top: int = 12) -> str:
    """A few lines of text: waits, then areas by share of the samples on the CPU, top functions,
    threads, native calls."""
    areas: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    native: Counter[str] = Counter()
    waits: Counter[str] = Counter()
    collecting = 0
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _frames(stack)
        thread = None
        if frames and frames[0][0].startswith("thread"):
            thread = re.sub(r"^thread \(\d+\):\s*", "", frames[0][0]) or frames[0][0]
            frames = frames[1:]
        waiting = _wait(frames)
        if waiting is not None:
            waits[waiting] += count
            continue
        total += count
        if thread is not None:
            threads[thread] += count
        areas[_area(frames)] += count
        if any(name.startswith("gc_collect") for name, _where in frames):
            collecting += count
        python = [frame for frame in frames if PY_LOCATION.search(frame[1])]
        if python:
            name, where = python[-1]
            short = re.sub(r"^.*?/(site-packages|lib/python3\.\d+|src|bench)/", "", where)
            short = re.sub(r":\d+$", "", short)
            functions[f"{name} ({short})"] += count
        if frames:
            for label, pattern in NATIVE.items():
                if pattern.search(frames[-1][0]):
                    native[label] += count
    if total == 0:
        return "  (no samples on the CPU)"

    def share(counter: Counter[str], limit: int) -> list[str]:
        return [f"  {100 * n / total:5.1f} %  {key}" for key, n in counter.most_common(limit)]

    waited = ", ".join(f"{key} {n}" for key, n in waits.most_common())
    lines = [f"  {total} samples on the CPU; besides, {waited or 'no waits'}"]
    lines += ["  areas (share of the samples on the CPU):", *share(areas, len(areas))]
    lines += ["  innermost Python functions:", *share(functions, top)]
    if len(threads) > 1:
        lines += ["  threads:", *share(threads, 6)]
    if native:
        lines += ["  native calls at the leaf:", *share(native, len(native))]
    if collecting:
        lines.append(
            f"  {100 * collecting / total:5.1f} %  in the cyclic garbage collector (counted above"
            " in the area that allocated)"
        )
    return "\n".join(lines)


def main() -> None:
    for path in sys.argv[1:]:
        with open(path) as source:
            print(path)
            print(summarise(source.read()))


if __name__ == "__main__":
    main()
