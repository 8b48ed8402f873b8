"""The long chaos run: two plugin processes paying each other while SIGKILLs strike at random.

    .venv/bin/python tools/chaos.py --store sqlite --transfers 4000 --kills 20 [--seed N]
    .venv/bin/python tools/chaos.py --store postgres [--postgres-url URL] ...

Prints the seed first and, at the end, a summary: kills per side; transfers sent, fulfilled,
rejected, expired and reverted; divergences (must be 0); duration. On a divergence it prints a
report naming every transfer the sides disagree about, and exits 1. The harness is the one the
CI test uses (tests/chaos/harness.py); see its docstring for what a run does and checks.

Without --postgres-url, PostgreSQL runs use the development server on 127.0.0.1:5432 if it
answers, else a throwaway cluster (tests/pgserver.py), in a database created for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import asyncpg

from chaos.harness import ChaosConfig, Outcome, run_chaos
from pgserver import drop_database, running_server, with_database


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=None, help="random when not given")
    parser.add_argument("--transfers", type=int, default=4000, help="total, both directions")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs per side")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--postgres-url", default=None, help="a database to create schemas in")
    parser.add_argument("--rate", type=float, default=25.0, help="transfers/s each side sends")
    parser.add_argument("--expiry", type=float, nargs=2, default=(1.0, 3.0), metavar=("MIN", "MAX"))
    parser.add_argument("--workdir", type=Path, default=None, help="kept; default: a temp dir")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, postgres_url: str | None) -> Outcome:
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ilp-paychan-chaos-"))
    config = ChaosConfig(
        workdir,
        args.seed,
        transfers=args.transfers,
        kills=args.kills,
        store=args.store,
        postgres_url=postgres_url,
        rate=args.rate,
        expiry=tuple(args.expiry),
    )
    outcome = run_chaos(config)
    if outcome.ok and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"journals, logs and stores kept in {workdir}")
    return outcome


def main(argv: list[str]) -> int:
    args = parse(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1_000_000)
    print(f"seed {args.seed}", flush=True)
    if args.store == "sqlite":
        outcome = run(args, None)
    elif args.postgres_url:
        outcome = run(args, args.postgres_url)
    else:
        with running_server() as server:
            name = f"ilp_chaos_{uuid.uuid4().hex[:12]}"
            asyncio.run(_create_database(server, name))
            try:
                outcome = run(args, with_database(server, name))
            finally:
                drop_database(server, name)
    print(outcome.summary())
    if not outcome.ok:
        print(outcome.report)
        return 1
    return 0


async def _create_database(server: str, name: str) -> None:
    connection = await asyncpg.connect(server)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
