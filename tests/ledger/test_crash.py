"""SIGKILL a process in the middle of a stream of ledger operations, 20 times, then look.

After each kill the reopened store must hold every acknowledged operation, hold no half of any
operation, and its sums must equal the sums over its stored transfers by state; a fulfilment's
peer notice is gone only if its clear was asked for.

On PostgreSQL the killed process's server sessions outlive it: a session that had received a
batch runs it to the end and commits it (typically still flushing its WAL at the kill), and only
then finds its client gone. The check waits until the worker's sessions (named by
`application_name`) have ended, so that no commit lands between reading the rows and reading
the sums, and reads the sums before and after the rows to prove it.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import asyncpg
import pytest

from ilp_paychan.errors import TransferNotFoundError
from ilp_paychan.ledger import TransferLog, open_backend
from ilp_paychan.ledger.postgres import split_url

KILLS = 20
WORKER = Path(__file__).with_name("ledger_worker.py")
#: How long a killed worker's PostgreSQL sessions may take to finish their last batch and end.
SESSIONS_GONE_WITHIN = 60.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def crash_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/crash.db"
    base: str = request.getfixturevalue("postgres_url")
    return f"{base}?schema=k_{uuid.uuid4().hex[:16]}"


def run_until_killed(url: str, key: str, seed: int, out: Path, delay: float) -> None:
    child = subprocess.Popen([sys.executable, str(WORKER), "crash", url, key, str(seed), str(out)])
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and '"ready"' in out.read_text()):
            assert child.poll() is None, "worker died before it was ready"
            assert time.monotonic() < deadline, "worker never became ready"
            time.sleep(0.01)
        time.sleep(delay)
    finally:
        child.kill()
        child.wait(timeout=30)


async def wait_sessions_gone(url: str, application_name: str) -> None:
    """Return once the server has no session named `application_name` left (bounded)."""
    dsn, _ = split_url(url)
    connection = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + SESSIONS_GONE_WITHIN
        while await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", application_name
        ):
            assert time.monotonic() < deadline, f"sessions of {application_name} never ended"
            await asyncio.sleep(0.01)
    finally:
        await connection.close()


async def read_sums(log: TransferLog) -> dict[str, int]:
    """The log's four sums."""
    return {
        "if": int(await log.get_incoming_fulfilled()),
        "of": int(await log.get_outgoing_fulfilled()),
        "ifap": int(await log.get_incoming_fulfilled_and_prepared()),
        "ofap": int(await log.get_outgoing_fulfilled_and_prepared()),
    }


def complete_lines(out: Path) -> list[str]:
    """The worker's lines, without a last one SIGKILL cut short in the middle of its write(2).

    A cut line is always the last one, and the worker died inside that write, before the
    operation it announces or acknowledges went any further.
    """
    text = out.read_text()
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return text.splitlines()


@pytest.mark.slow
async def test_sigkill_never_leaves_half_an_operation(crash_url: str, tmp_path: Path) -> None:
    rng = random.Random(20)
    key = "crash"
    recomputed = Counter[str]()
    acknowledged_total = 0
    all_tried: set[str] = set()
    noticed: set[str] = set()  # fulfilled with a peer notice, acknowledged
    clearing: set[str] = set()  # their notice's clear was asked for (it may be lost)
    postgres = not crash_url.startswith("sqlite:")
    for round_ in range(KILLS):
        out = tmp_path / f"round{round_}.jsonl"
        worker_url = crash_url
        if postgres:
            session_name = f"ilp-crash-{uuid.uuid4().hex[:12]}"
            worker_url = f"{crash_url}&application_name={session_name}"
        run_until_killed(worker_url, key, round_, out, rng.uniform(0.0, 0.3))
        if postgres:
            await wait_sessions_gone(crash_url, session_name)
        lines = [json.loads(line) for line in complete_lines(out)]
        tried = [line["id"] for line in lines if line["op"] == "try"]
        all_tried.update(tried)
        acked = {
            (line["op"], line["id"])
            for line in lines
            if line["op"] not in ("try", "ready", "clearing")
        }
        acknowledged_total += len(acked)
        noticed.update(tid for op, tid in acked if op == "fulfilled")
        clearing.update(line["id"] for line in lines if line["op"] == "clearing")

        backend = await open_backend(crash_url)
        try:
            log = backend.get_transfer_log(key)
            sums_before = await read_sums(log)
            for tid in tried:
                try:
                    record = await log.get(tid)
                except TransferNotFoundError:
                    assert ("prepared", tid) not in acked
                    continue
                state = record["state"]
                if ("fulfilled", tid) in acked:
                    assert state == "fulfilled"
                if ("cancelled", tid) in acked:
                    assert state == "cancelled"
                assert (state == "fulfilled") == (record["fulfillment"] is not None)
                side = "i" if record["isIncoming"] else "o"
                amount = int(record["transfer"]["amount"])
                if state != "cancelled":
                    recomputed[side + "fap"] += amount
                if state == "fulfilled":
                    recomputed[side + "f"] += amount
            sums = await read_sums(log)
            assert sums == sums_before, f"the store changed while checked, after kill {round_ + 1}"
            assert sums == {k: recomputed[k] for k in sums}, f"after kill {round_ + 1}"
            prepared = {r["transfer"]["id"] for r in await log.list_prepared()}
            assert prepared <= all_tried
            # A notice goes only with a clear: a lost clear leaves it (the peer is told again),
            # a committed fulfilment never lacks it.
            notices = {r["transfer"]["id"] for r in await log.list_peer_notices()}
            assert noticed - clearing <= notices, f"after kill {round_ + 1}"
            assert notices <= all_tried
            assert all(r["state"] == "fulfilled" for r in await log.list_peer_notices())
        finally:
            await backend.close()
    assert acknowledged_total > KILLS
