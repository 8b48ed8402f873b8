"""`ilp-paychan demo --stream` through a real ilp-connector 23 child process, and its fallback.

The connector tests run the CLI as a subprocess with node on PATH; the pinned npm project is
installed once per test session into a temporary XDG cache shared by the session's workers (the
install takes seconds; the file lock keeps workers from installing at once). The fallback tests
hide node by running with a PATH that holds nothing.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import signal
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from ilp_paychan.shell import demo_connector

from .conftest import CLI, REPO, run_cli

INSTALL_AND_RUN = 600.0


@pytest.fixture(scope="session")
def connector_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An XDG cache dir for the session; under xdist the workers of one run share it."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail("node and npm are required for the connector demo in CI")
        pytest.skip("node/npm not installed (./dev test installs them)")
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    cache = base / "xdg-cache"
    cache.mkdir(exist_ok=True)
    return cache


@pytest.fixture
def installed(connector_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The session's install (made now if no test has made it yet)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(connector_cache))
    return demo_connector.ensure_installed(quiet=True)


def _installed_dir(cache: Path) -> Path:
    found = [p for p in (cache / "ilp-paychan").iterdir() if p.is_dir()]
    assert len(found) == 1, found
    return found[0]


def _children_in(directory: Path) -> list[int]:
    """Processes running with `directory` as their working directory (our connector children)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if Path(os.readlink(entry / "cwd")) == directory:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.mark.interop
def test_demo_pays_through_ilp_connector(connector_cache: Path) -> None:
    result = run_cli(
        "demo",
        "--stream",
        "--link",
        "connector",
        "--amount",
        "250000",
        "--max-packet",
        "1000",
        "--json",
        env={"XDG_CACHE_HOME": str(connector_cache)},
        timeout=INSTALL_AND_RUN,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["ok"] is True, summary
    assert summary["link"] == "connector"
    assert summary["sent"] == summary["delivered"] == summary["received"] == "250000"
    assert summary["path"] == f"alice → ilp-connector {demo_connector.CONNECTOR_VERSION} → bob"
    assert summary["destination"].startswith("test.conn.bob.")
    assert summary["exchange_rate"] == "1.000000"
    assert summary["packets_received"] >= 250  # the connector answers F08 above 1000
    assert summary["fallback"] is None
    installed = _installed_dir(connector_cache)
    assert (installed / "node_modules" / "ilp-connector" / "package.json").is_file()
    assert _children_in(installed) == []
    assert not (demo_connector.PROJECT_DIR / "node_modules").exists()


@pytest.mark.interop
def test_auto_picks_the_connector_and_reuses_the_install(
    connector_cache: Path, installed: Path
) -> None:
    stamp = installed / "node_modules" / demo_connector.STAMP
    before = stamp.stat().st_mtime_ns
    result = run_cli(
        "demo", "--stream", "--amount", "5000", "--no-progress",
        env={"XDG_CACHE_HOME": str(connector_cache)},
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "through ilp-connector on loopback" in result.stdout
    assert f"alice → ilp-connector {demo_connector.CONNECTOR_VERSION} → bob" in result.stdout
    assert "OK: the whole amount arrived" in result.stdout
    assert stamp.stat().st_mtime_ns == before


@pytest.mark.interop
def test_ctrl_c_stops_the_connector_child(connector_cache: Path, installed: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(connector_cache)}
    proc = subprocess.Popen(
        [*CLI, "demo", "--stream", "--link", "connector", "--amount", "10000000000", "--json"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not _children_in(installed) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        assert _children_in(installed), "the connector child never started"
        time.sleep(1.0)  # let the payment get going
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 128 + signal.SIGINT, err
    assert b"stopped by SIGINT" in err
    assert _children_in(installed) == []


def test_auto_without_node_pays_over_our_own_link(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    result = run_cli(
        "demo", "--stream", "--amount", "20000", "--max-packet", "500", "--json",
        env={"PATH": str(empty), "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["link"] == "btp"
    assert summary["sent"] == summary["delivered"] == summary["received"] == "20000"
    assert "BTP 2.0 link" in summary["path"]
    assert "node is not on PATH" in summary["fallback"]
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "ilp-paychan demo: no ilp-connector (node is not on PATH): paying over our own "
        "two-party BTP link instead"
    ]
    assert not (tmp_path / "cache").exists()


def test_connector_link_without_node_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli(
        "demo", "--stream", "--link", "connector", "--json",
        env={"PATH": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == "ilp-paychan demo: --link connector: node is not on PATH"


def test_the_npm_project_ships_as_package_data() -> None:
    """Every file of the project is matched by pyproject's package-data and pins one version."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["ilp_paychan"]
    package = REPO / "src" / "ilp_paychan"
    shipped = sorted(
        p.name for p in demo_connector.PROJECT_DIR.iterdir() if p.name != "node_modules"
    )
    assert shipped == ["connector.js", "package-lock.json", "package.json"]
    for name in shipped:
        relative = (demo_connector.PROJECT_DIR / name).relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative
    manifest = json.loads((demo_connector.PROJECT_DIR / "package.json").read_text())
    lock = json.loads((demo_connector.PROJECT_DIR / "package-lock.json").read_text())
    assert manifest["dependencies"]["ilp-connector"] == demo_connector.CONNECTOR_VERSION
    assert lock["packages"][""]["dependencies"] == manifest["dependencies"]
    for name, version in manifest["dependencies"].items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version


def test_the_install_dir_follows_xdg_cache_home_and_the_lock(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = demo_connector.install_dir()
    assert first.parent == tmp_path / "ilp-paychan"
    assert first.name.startswith("connector-")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert demo_connector.install_dir() == tmp_path / "home" / ".cache" / "ilp-paychan" / first.name
