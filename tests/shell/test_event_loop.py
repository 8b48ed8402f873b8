"""The process-wide settings the CLI's event loop helper makes: the garbage collector's.

Each case runs in a child process, since `gc.freeze()` and the thresholds would otherwise stay
set in the test runner for the rest of the session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ilp_paychan.shell.event_loop import GC_THRESHOLDS

SRC = Path(__file__).resolve().parent.parent.parent / "src"
PROBE = """
import gc, json
from ilp_paychan.shell.event_loop import run

async def main():
    return {"thresholds": list(gc.get_threshold()), "frozen": gc.get_freeze_count()}

print(json.dumps(run(main())))
"""


def _probe(gc_setting: str | None) -> dict[str, object]:
    env = {key: value for key, value in os.environ.items() if key != "ILP_PAYCHAN_GC"}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    if gc_setting is not None:
        env["ILP_PAYCHAN_GC"] = gc_setting
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize("setting", [None, "tuned"])
def test_run_freezes_the_startup_heap_and_raises_the_young_threshold(setting: str | None) -> None:
    seen = _probe(setting)
    assert seen["thresholds"] == list(GC_THRESHOLDS)
    assert isinstance(seen["frozen"], int)
    assert seen["frozen"] > 1000  # the modules, classes and functions imported so far


def test_run_keeps_pythons_collector_settings_when_asked() -> None:
    seen = _probe("default")
    assert seen["thresholds"] == [700, 10, 10]
    assert seen["frozen"] == 0
