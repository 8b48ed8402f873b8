"""Four OS processes x 500 random operations on one TransferLog key (SQLite file, PostgreSQL).

Checks: no committed state ever passes a limit; no update is lost (the final sums equal the sums
over the stored transfers by state, and a replay of the operations that succeeded); each id is
counted once; set_if_max ends at the true maximum and every call returned a correct value.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import ledger_worker as worker
import pytest

from ilp_paychan.errors import TransferNotFoundError
from ilp_paychan.ledger import open_backend

PROCESSES = 4
OPERATIONS = 500
WORKER = Path(__file__).with_name("ledger_worker.py")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/shared.db"
    base: str = request.getfixturevalue("postgres_url")
    return f"{base}?schema=c_{uuid.uuid4().hex[:16]}"


def run_workers(url: str, key: str, tmp_path: Path) -> list[dict[str, Any]]:
    outputs = [tmp_path / f"worker{n}.jsonl" for n in range(PROCESSES)]
    children = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "mix", url, key, str(n), str(OPERATIONS), str(out)]
        )
        for n, out in enumerate(outputs)
    ]
    for child in children:
        assert child.wait(timeout=100) == 0
    lines: list[dict[str, Any]] = []
    for out in outputs:
        lines.extend(json.loads(line) for line in out.read_text().splitlines())
    assert len(lines) == PROCESSES * OPERATIONS
    return lines


@pytest.mark.slow
async def test_four_processes_lose_nothing_and_never_pass_a_limit(
    shared_url: str, tmp_path: Path
) -> None:
    key = "shared"
    ops = run_workers(shared_url, key, tmp_path)

    for op in ops:
        i_f, o_f, ifap, ofap = op["totals"]
        assert ifap - o_f <= worker.MAXIMUM, op
        assert ofap - i_f <= -worker.MINIMUM, op
        assert 0 <= i_f <= ifap, op
        assert 0 <= o_f <= ofap, op

    replay = Counter[str]()
    new_ids = Counter[str]()
    settled = Counter[str]()
    for op in ops:
        side = "i" if op["incoming"] else "o"
        amount = int(op["amount"])
        if op["op"] == "prepare" and op["result"] == "new":
            replay[side + "fap"] += amount
            new_ids[op["id"]] += 1
        elif op["op"] == "fulfill" and op["result"] is True:
            replay[side + "f"] += amount
            settled[op["id"]] += 1
        elif op["op"] == "cancel" and op["result"] is True:
            replay[side + "fap"] -= amount
            settled[op["id"]] += 1
    assert set(new_ids.values()) <= {1}
    assert set(settled.values()) <= {1}
    assert any(op["result"] == "NotAcceptedError" for op in ops)

    backend = await open_backend(shared_url)
    try:
        log = backend.get_transfer_log(key)
        final = {
            "if": int(await log.get_incoming_fulfilled()),
            "of": int(await log.get_outgoing_fulfilled()),
            "ifap": int(await log.get_incoming_fulfilled_and_prepared()),
            "ofap": int(await log.get_outgoing_fulfilled_and_prepared()),
        }
        stored = Counter[str]()
        for index in range(worker.POOL):
            transfer, _ = worker.pool_transfer(index)
            try:
                record = await log.get(transfer["id"])
            except TransferNotFoundError:
                assert transfer["id"] not in new_ids
                continue
            assert transfer["id"] in new_ids
            side = "i" if record["isIncoming"] else "o"
            amount = int(record["transfer"]["amount"])
            if record["state"] != "cancelled":
                stored[side + "fap"] += amount
            if record["state"] == "fulfilled":
                stored[side + "f"] += amount
        assert final == {k: stored[k] for k in final}
        assert final == {k: replay[k] for k in final}

        offers = [op for op in ops if op["op"] == "set_if_max"]
        offered = sorted(int(op["id"]) for op in offers)
        top = await backend.get_max_value_tracker(key).get_max()
        assert int(top["value"]) == offered[-1]
        replacing = sorted(
            (int(op["id"]), int(op["result"]["value"]))
            for op in offers
            if op["result"]["value"] != op["id"]
        )
        previous = 0
        for value, returned in replacing:
            assert returned == previous
            previous = value
        assert previous == offered[-1]
    finally:
        await backend.close()
