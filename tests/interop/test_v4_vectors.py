"""The committed vectors of tests/vectors/v4 are what the pinned JavaScript libraries produce now:
generate.js is run again into a temporary folder and every file must match byte for byte.

The codec tests read the committed files and need no node; this test catches a vector file that
was edited by hand, or a lock file changed without regenerating.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .nodeproc import npm_install, require_node

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]

JS_V4 = Path(__file__).resolve().parent / "js_v4"
V4 = Path(__file__).resolve().parent.parent / "vectors" / "v4"


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_node()
    npm_install(JS_V4, timeout=240)
    out = tmp_path_factory.mktemp("v4")
    node = shutil.which("node")
    assert node is not None
    result = subprocess.run(
        [node, str(JS_V4 / "generate.js"), str(out)],
        cwd=JS_V4,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return out


COMMITTED = sorted(p.name for p in V4.glob("*.json"))


def test_generator_writes_exactly_the_committed_files(regenerated: Path) -> None:
    assert sorted(p.name for p in regenerated.glob("*.json")) == COMMITTED


@pytest.mark.parametrize("name", COMMITTED)
def test_committed_vectors_match_a_fresh_run(regenerated: Path, name: str) -> None:
    fresh = (regenerated / name).read_text(encoding="utf-8")
    committed = (V4 / name).read_text(encoding="utf-8")
    # The node version is recorded for provenance only; anything else must be identical.
    assert _without_node_version(fresh) == _without_node_version(committed)


def _without_node_version(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith('"node"'))
