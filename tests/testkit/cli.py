"""`ilp-paychan` as a subprocess, the way the shell and interop tests run it.

The child gets this process's environment without `CONNECTOR_LEDGERS`: a developer's own
ledgers there would become the child's configuration.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

#: The command line that runs this checkout's CLI with this interpreter.
CLI = [sys.executable, "-m", "ilp_paychan.shell.cli"]


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a CLI child: ours without `CONNECTOR_LEDGERS`, then `extra`."""
    env = {k: v for k, v in os.environ.items() if k != "CONNECTOR_LEDGERS"}
    env.update(extra or {})
    return env


async def run_cli_async(*args: str, wait: float) -> tuple[int, str, str]:
    """Run `ilp-paychan ARGS` to its end: (exit code, stdout, stderr). It is killed if it
    outlives `wait` seconds (the TimeoutError then goes on)."""
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), wait)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def pay_json_async(
    plugin_config: Path, data_dir: Path, to: str, *options: str, wait: float
) -> tuple[int, str, str]:
    """Run `ilp-paychan pay` with its plugin's configuration file, its data folder, the SPSP
    receiver `to` and `options` (the amount, the link's limits), asking for its result as JSON
    on stdout: (exit code, stdout, stderr), as `run_cli_async`."""
    return await run_cli_async(
        "pay",
        "--plugin-config",
        str(plugin_config),
        "--data-dir",
        str(data_dir),
        "--to",
        to,
        *options,
        "--json",
        wait=wait,
    )
