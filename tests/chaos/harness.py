"""The chaos driver: two plugin processes paying each other, SIGKILLed and restarted, then judged.

Shared by the CI-sized test (tests/chaos/test_chaos.py) and the long run (tools/chaos.py).

A run:
1. starts a listener and a client worker (`chaos.worker`), each a real `Plugin` on its own
   durable store (a SQLite file with synchronous=FULL, or its own PostgreSQL schema), over
   loopback WebSockets; both send transfers to the other at a steady rate until their budgets
   are spent, with expiries of a few seconds, and answer incoming ones as `common.decision_of`
   says (mostly fulfil, some reject, a few never answered; some answers delayed up to past the
   expiry);
2. SIGKILLs the sides by a seeded plan: each kill waits for the run to reach a random point of
   its transfer budget, then strikes the side a random moment after it is ready (or, for some
   kills, while it is still starting up); the side restarts on its store after a random delay,
   some delays longer than the expiries so that transfers expire during the outage;
3. after the last kill and the last transfer, waits (bounded) until neither side has prepared
   transfers, pending peer notices or answers still to give, then stops both with SIGTERM;
4. reads both stores directly and checks that the two sides agree (see `check_stores`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from chaos.common import ROLES, Decision, Journal, WorkerConfig, decision_of, read_journal
from ilp_paychan.ledger import open_backend

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
TICK = 0.02


class ChaosError(RuntimeError):
    """The run itself could not be carried out (a worker died on its own, or hung)."""


@dataclass(frozen=True)
class ChaosConfig:
    """A run's parameters; `transfers` is the total over both directions."""

    workdir: Path
    seed: int
    transfers: int = 400
    kills: int = 4
    store: str = "sqlite"
    postgres_url: str | None = None
    rate: float = 25.0
    in_flight: int = 16
    expiry: tuple[float, float] = (1.0, 3.0)
    request_timeout: float = 2.0
    #: How long the run may take to settle after the last transfer and the last kill.
    settle_limit: float = 90.0
    log: Callable[[str], None] = print


@dataclass
class Row:
    """One transfer as one side's store holds it."""

    id: str
    incoming: bool
    amount: int
    state: str
    notice_pending: bool


@dataclass
class Totals:
    balance: int
    incoming_fulfilled: int
    outgoing_fulfilled: int


@dataclass
class Outcome:
    """What a run did and what the check found."""

    seed: int
    store: str
    kills: dict[str, int]
    counts: dict[str, int]
    divergences: list[str]
    settled: bool
    duration: float
    report: str = ""

    @property
    def ok(self) -> bool:
        return self.settled and not self.divergences

    def summary(self) -> str:
        kills = ", ".join(f"{role} {self.kills[role]}" for role in ROLES)
        counts = ", ".join(f"{name} {value}" for name, value in self.counts.items())
        return (
            f"seed {self.seed}, store {self.store}: kills {kills}; transfers {counts}; "
            f"divergences {len(self.divergences)}; settled {self.settled}; "
            f"duration {self.duration:.1f} s"
        )


# ---------------------------------------------------------------------- stores


@dataclass(frozen=True)
class StoreSpec:
    """Where one side keeps its ledger, and how the check reads it back."""

    url: str
    sqlite_path: Path | None = None
    pg_url: str | None = None
    pg_schema: str | None = None

    @classmethod
    def sqlite(cls, path: Path) -> StoreSpec:
        return cls(f"sqlite:///{path}?synchronous=FULL", sqlite_path=path)

    @classmethod
    def postgres(cls, database_url: str, schema: str) -> StoreSpec:
        separator = "&" if "?" in database_url else "?"
        return cls(
            f"{database_url}{separator}schema={schema}", pg_url=database_url, pg_schema=schema
        )

    async def rows(self) -> dict[str, Row]:
        """Every transfer of the store's default log, read from its table."""
        query = (
            "SELECT id, is_incoming, amount, state, notify_peer FROM ilp_transfers"
            " WHERE log_key = ''"
        )
        if self.sqlite_path is not None:
            connection = sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True)
            try:
                raw = connection.execute(query).fetchall()
            finally:
                connection.close()
        else:
            assert self.pg_url is not None
            conn = await asyncpg.connect(
                self.pg_url, server_settings={"search_path": f'"{self.pg_schema}"'}
            )
            try:
                raw = [tuple(record) for record in await conn.fetch(query)]
            finally:
                await conn.close()
        return {r[0]: Row(r[0], bool(r[1]), int(r[2]), str(r[3]), bool(r[4])) for r in raw}

    async def totals(self) -> Totals:
        """The store's own sums, through the public TransferLog."""
        backend = await open_backend(self.url)
        try:
            log = backend.get_transfer_log()
            return Totals(
                int(await log.get_balance()),
                int(await log.get_incoming_fulfilled()),
                int(await log.get_outgoing_fulfilled()),
            )
        finally:
            await backend.close()

    async def drop(self) -> None:
        """Remove a PostgreSQL schema (a SQLite file goes with its directory)."""
        if self.pg_url is None:
            return
        conn = await asyncpg.connect(self.pg_url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{self.pg_schema}" CASCADE')
        finally:
            await conn.close()


def make_stores(config: ChaosConfig) -> dict[str, StoreSpec]:
    if config.store == "sqlite":
        return {role: StoreSpec.sqlite(config.workdir / f"{role}.db") for role in ROLES}
    if config.store != "postgres" or config.postgres_url is None:
        raise ValueError("store must be sqlite, or postgres with a postgres_url")
    tag = uuid.uuid4().hex[:10]
    return {role: StoreSpec.postgres(config.postgres_url, f"chaos_{role}_{tag}") for role in ROLES}


# ---------------------------------------------------------------------- processes


class JournalTail:
    """Reads a worker's journal incrementally; a line still being written waits for its end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def new_lines(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        *complete, self._partial = data.split(b"\n")
        lines = []
        for raw in complete:
            with contextlib.suppress(ValueError):
                lines.append(json.loads(raw))
        return lines


class Side:
    """One role's worker process across its lives."""

    def __init__(
        self, role: str, config_path: Path, journal: Path, stderr: Path, driver: Journal
    ) -> None:
        self.role = role
        self.driver = driver
        self.config_path = config_path
        self.stderr_path = stderr
        self.tail = JournalTail(journal)
        self.proc: subprocess.Popen[bytes] | None = None
        self.spawned_at = 0.0
        self.ready_at: float | None = None
        self.restart_at: float | None = None
        self.kills = 0
        self.tries: set[int] = set()
        self.status: list[dict[str, Any]] = []

    def spawn(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), env.get("PYTHONPATH")) if p)
        with open(self.stderr_path, "ab") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "chaos.worker", str(self.config_path)],
                cwd=REPO,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self.spawned_at = time.monotonic()
        self.driver.write(ev="spawn", role=self.role, t=round(time.time(), 3))
        self.ready_at = None
        self.restart_at = None
        self.status = []

    @property
    def up(self) -> bool:
        return self.proc is not None

    def poll(self) -> None:
        """Read new journal lines; raise ChaosError if the process ended by itself."""
        for line in self.tail.new_lines():
            event = line.get("ev")
            if event == "try":
                self.tries.add(line["i"])
            elif event == "ready":
                self.ready_at = time.monotonic()
            elif event == "status":
                self.status.append(line)
        if self.proc is not None and self.proc.poll() is not None:
            raise ChaosError(
                f"the {self.role} worker exited by itself (code {self.proc.returncode}); "
                f"its stderr:\n{stderr_tail(self.stderr_path)}"
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.driver.write(ev="kill", role=self.role, t=round(time.time(), 3))
        self.proc = None
        self.kills += 1
        self.poll()  # lines written before the kill still count

    def settled(self) -> bool:
        """The last two status lines of this life say: done sending, nothing left open."""
        recent = self.status[-2:]
        return len(recent) == 2 and all(
            s["done"] and not s["prepared"] and not s["notices"] and not s["answering"]
            for s in recent
        )

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM and wait; True when it exited cleanly."""
        if self.proc is None:
            return True
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
            code = -1
        self.proc = None
        return code == 0


def stderr_tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(none)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Kill:
    """One planned kill: when the run has tried `threshold` transfers, strike `role`."""

    threshold: float
    role: str
    #: Strike while it starts up (not waiting for it to be ready).
    early: bool
    #: Seconds after it started (early) or became ready.
    after: float
    #: Seconds it stays down.
    down: float


def kill_plan(config: ChaosConfig, rng: random.Random) -> list[Kill]:
    roles = [role for role in ROLES for _ in range(config.kills)]
    rng.shuffle(roles)
    thresholds = sorted(rng.uniform(0.02, 0.92) * config.transfers for _ in roles)
    longest = config.expiry[1]
    plan = []
    for threshold, role in zip(thresholds, roles, strict=True):
        early = rng.random() < 0.2
        down = rng.uniform(0.0, 1.0) if rng.random() < 0.7 else rng.uniform(0.7, 1.5) * longest
        plan.append(Kill(threshold, role, early, rng.uniform(0.0, 1.0), down))
    return plan


# ---------------------------------------------------------------------- the run


def run_chaos(config: ChaosConfig) -> Outcome:
    """Carry out a run and check it (see the module docstring). Raises ChaosError if a worker
    misbehaves outside the plan; disagreement is reported in the Outcome, not raised."""
    config.log(f"chaos: seed {config.seed}, store {config.store}")
    started = time.monotonic()
    rng = random.Random(config.seed)
    config.workdir.mkdir(parents=True, exist_ok=True)
    stores = make_stores(config)
    port = free_port()
    run_secret = f"{config.seed}-{uuid.uuid4().hex}"
    driver = Journal(str(config.workdir / "driver.jsonl"))
    driver.write(ev="run", t=round(time.time(), 3), seed=config.seed)
    sides: dict[str, Side] = {}
    for role in ROLES:
        worker = WorkerConfig(
            role=role,
            store=stores[role].url,
            port=port,
            journal=str(config.workdir / f"{role}.jsonl"),
            run_secret=run_secret,
            budget=config.transfers // 2,
            rate=config.rate,
            in_flight=config.in_flight,
            expiry_min=config.expiry[0],
            expiry_max=config.expiry[1],
            request_timeout=config.request_timeout,
            seed=config.seed,
        )
        path = config.workdir / f"{role}.json"
        worker.save(path)
        sides[role] = Side(
            role, path, Path(worker.journal), config.workdir / f"{role}.stderr", driver
        )
    settled = False
    try:
        _start_both(sides)
        _kill_and_restart(config, sides, kill_plan(config, rng))
        settled = _settle(config, sides)
    finally:
        clean = {role: side.stop() for role, side in sides.items()}
    if not all(clean.values()):
        raise ChaosError(
            "a worker did not stop cleanly on SIGTERM: "
            + "; ".join(
                f"{role}:\n{stderr_tail(sides[role].stderr_path)}"
                for role, ok in clean.items()
                if not ok
            )
        )
    outcome = asyncio.run(
        check_stores(stores, config.workdir, run_secret, {r: s.kills for r, s in sides.items()})
    )
    outcome.seed = config.seed
    outcome.store = config.store
    outcome.settled = settled
    outcome.duration = time.monotonic() - started
    if not settled:
        outcome.report = "the run did not settle in time\n" + outcome.report
    if config.store == "postgres" and outcome.ok:
        asyncio.run(_drop_all(stores))
    config.log("chaos: " + outcome.summary())
    return outcome


async def _drop_all(stores: dict[str, StoreSpec]) -> None:
    for spec in stores.values():
        await spec.drop()


def _start_both(sides: dict[str, Side]) -> None:
    for role in ROLES:
        side = sides[role]
        side.spawn()
        deadline = time.monotonic() + 60
        while side.ready_at is None:
            side.poll()
            if time.monotonic() > deadline:
                raise ChaosError(f"the {role} worker never became ready")
            time.sleep(TICK)


def _kill_and_restart(config: ChaosConfig, sides: dict[str, Side], plan: list[Kill]) -> None:
    # Generous: every transfer at its rate, each outage twice, and a minute of slack.
    limit = config.transfers / config.rate + sum(2 * k.down + 5 for k in plan) + 60
    deadline = time.monotonic() + limit
    next_kill_at = 0.0
    while plan or any(not side.up for side in sides.values()):
        if time.monotonic() > deadline:
            raise ChaosError(f"the kill plan did not finish within {limit:.0f} s")
        now = time.monotonic()
        for side in sides.values():
            side.poll()
            if not side.up and side.restart_at is not None and now >= side.restart_at:
                side.spawn()
        if plan and now >= next_kill_at:
            kill = plan[0]
            victim = sides[kill.role]
            progress = sum(len(side.tries) for side in sides.values())
            if progress >= kill.threshold and victim.up:
                since = victim.spawned_at if kill.early else victim.ready_at
                if since is not None and now >= since + kill.after:
                    victim.kill()
                    victim.restart_at = time.monotonic() + kill.down
                    plan.pop(0)
                    next_kill_at = time.monotonic() + rng_gap(config.seed, victim.kills)
        time.sleep(TICK)


def rng_gap(seed: int, n: int) -> float:
    """A short pause between two kills (seeded), so that both sides are sometimes down."""
    return random.Random(f"{seed}/gap/{n}").uniform(0.0, 0.8)


def _settle(config: ChaosConfig, sides: dict[str, Side]) -> bool:
    """Wait until both sides settled (True) or the limit passed (False)."""
    deadline = time.monotonic() + config.settle_limit + config.expiry[1]
    while time.monotonic() < deadline:
        for side in sides.values():
            side.poll()
        if all(side.settled() for side in sides.values()):
            return True
        time.sleep(0.1)
    return False


# ---------------------------------------------------------------------- the check


def _journal_ids(workdir: Path) -> dict[str, dict[str, set[str]]]:
    """Per role: event name -> transfer ids it was journalled for."""
    seen: dict[str, dict[str, set[str]]] = {}
    for role in ROLES:
        by_event: dict[str, set[str]] = {}
        for line in read_journal(workdir / f"{role}.jsonl"):
            if "id" in line:
                by_event.setdefault(line["ev"], set()).add(line["id"])
        seen[role] = by_event
    return seen


async def check_stores(
    stores: dict[str, StoreSpec], workdir: Path, run_secret: str, kills: dict[str, int]
) -> Outcome:
    """Judge a finished run from both stores (read directly) and the journals.

    Rules: every id known to either side is in the same final state on both sides, in opposite
    directions, with the same amount; an id known to one side only is cancelled there; nothing
    is left prepared or with an undelivered peer notice; only transfers the receiver decided
    to fulfil are fulfilled; a Prepare the peer acknowledged is stored on both sides; a
    fulfilment the receiver's `fulfill_condition` reported as done, or the sender's
    `outgoing_fulfill` announced, is fulfilled on both sides. Each store's sums equal the sums
    over its own rows, and the balances are mirrored.
    """
    rows = {role: await stores[role].rows() for role in ROLES}
    totals = {role: await stores[role].totals() for role in ROLES}
    journal = _journal_ids(workdir)
    problems: dict[str, list[str]] = {}

    def problem(tid: str, text: str) -> None:
        problems.setdefault(tid, []).append(text)

    server, client = rows["server"], rows["client"]
    for tid in sorted(set(server) | set(client)):
        here = {role: rows[role].get(tid) for role in ROLES}
        present = {role: row for role, row in here.items() if row is not None}
        for role, row in present.items():
            if row.state == "prepared":
                problem(tid, f"left prepared on the {role}")
            if row.notice_pending:
                problem(tid, f"peer notice never delivered by the {role}")
        if len(present) == 1:
            ((role, row),) = present.items()
            if row.state != "cancelled":
                problem(tid, f"only on the {role}, {row.state}")
        else:
            s, c = here["server"], here["client"]
            assert s is not None
            assert c is not None
            if s.state != c.state:
                problem(tid, f"server {s.state}, client {c.state}")
            if s.incoming == c.incoming:
                problem(tid, "same direction on both sides")
            if s.amount != c.amount:
                problem(tid, f"amounts differ: server {s.amount}, client {c.amount}")
        if any(row.state == "fulfilled" for row in present.values()):
            decision = decision_of(run_secret, tid)
            if decision is not Decision.FULFILL:
                problem(tid, f"fulfilled although the receiver decided {decision.value}")
    for role in ROLES:
        peer = "client" if role == "server" else "server"
        for tid in journal[role].get("sent", set()):
            if tid not in rows[peer]:
                problem(tid, f"the {role}'s Prepare was acknowledged but the {peer} lacks it")
        for event in ("fulfill_ok", "outgoing_fulfill"):
            for tid in journal[role].get(event, set()):
                states = {r: rows[r][tid].state if tid in rows[r] else None for r in ROLES}
                if set(states.values()) != {"fulfilled"}:
                    problem(tid, f"the {role} saw {event} but the end states are {states}")

    sums = []
    for role in ROLES:
        own = rows[role].values()
        incoming = sum(r.amount for r in own if r.incoming and r.state == "fulfilled")
        outgoing = sum(r.amount for r in own if not r.incoming and r.state == "fulfilled")
        total = totals[role]
        if (total.incoming_fulfilled, total.outgoing_fulfilled) != (incoming, outgoing):
            sums.append(
                f"{role}: stored sums in/out {total.incoming_fulfilled}/{total.outgoing_fulfilled}"
                f" but its fulfilled rows add up to {incoming}/{outgoing}"
            )
        if total.balance != incoming - outgoing:
            sums.append(
                f"{role}: balance {total.balance} but fulfilled rows give {incoming - outgoing}"
            )
    if totals["server"].balance != -totals["client"].balance:
        sums.append(
            f"balances not mirrored: server {totals['server'].balance}, "
            f"client {totals['client'].balance}"
        )

    counts = _counts(rows, journal, run_secret)
    divergences = [f"{tid}: {'; '.join(texts)}" for tid, texts in problems.items()] + sums
    report = _report(problems, sums, rows, workdir, run_secret) if divergences else ""
    return Outcome(0, "", kills, counts, divergences, True, 0.0, report)


def _counts(
    rows: dict[str, dict[str, Row]], journal: dict[str, dict[str, set[str]]], run_secret: str
) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for role in ROLES:
        counts["sent"] += len(journal[role].get("try", set()))
        counts["reverted"] += len(journal[role].get("incoming_fulfill_reverted", set()))
        peer = "client" if role == "server" else "server"
        for tid, row in rows[role].items():
            if row.incoming:
                continue
            if row.state == "fulfilled":
                counts["fulfilled"] += 1
            elif row.state == "cancelled":
                asked = decision_of(run_secret, tid) is Decision.REJECT and tid in rows[peer]
                counts["rejected" if asked else "expired"] += 1
    return {name: counts[name] for name in ("sent", "fulfilled", "rejected", "expired", "reverted")}


def _report(
    problems: dict[str, list[str]],
    sums: list[str],
    rows: dict[str, dict[str, Row]],
    workdir: Path,
    run_secret: str,
    limit: int = 25,
) -> str:
    """A precise account of what disagrees: per id, both sides' rows, then a timeline (seconds
    from the run's start) of that id's journal lines on both sides and the kills around them."""
    journals = {role: read_journal(workdir / f"{role}.jsonl") for role in ROLES}
    driver = read_journal(workdir / "driver.jsonl")
    t0 = next((line["t"] for line in driver if line["ev"] == "run"), 0.0)
    out = [f"{len(problems)} transfer(s) disagree; {len(sums)} sum problem(s)"]
    out.extend(sums)
    for tid, texts in list(problems.items())[:limit]:
        out.append(f"- {tid} (receiver decided {decision_of(run_secret, tid).value}):")
        out.extend(f"    {text}" for text in texts)
        for role in ROLES:
            row = rows[role].get(tid)
            if row is None:
                out.append(f"    {role}: absent")
            else:
                direction = "incoming" if row.incoming else "outgoing"
                pending = ", notice pending" if row.notice_pending else ""
                out.append(f"    {role}: {row.state}, {direction}, amount {row.amount}{pending}")
        story = [
            (line["t"], f"{role}:{line['ev']}" + (f"({line['error']})" if "error" in line else ""))
            for role in ROLES
            for line in journals[role]
            if line.get("id") == tid
        ]
        if story:
            first, last = min(t for t, _ in story) - 1.0, max(t for t, _ in story) + 5.0
            story += [
                (line["t"], f"{line['ev'].upper()} {line['role']}")
                for line in driver
                if line["ev"] in ("kill", "spawn") and first <= line["t"] <= last
            ]
        timeline = " ".join(f"+{t - t0:.3f} {what}" for t, what in sorted(story))
        out.append(f"    timeline: {timeline or '-'}")
    if len(problems) > limit:
        out.append(f"... and {len(problems) - limit} more")
    return "\n".join(out)
