"""ilp-connector 23 as a child process, for `ilp-paychan demo --stream --link connector`.

The demo pays through the connector people run, not only over our own two-party link. The npm
project that starts it ships with the package (`connector_js/`: package.json, a pinned
package-lock.json and connector.js); node_modules does not. On first use `ensure_installed`
runs `npm ci --omit=dev` into a per-user cache directory named after the lock file's hash
(``$XDG_CACHE_HOME/ilp-paychan/connector-<hash>``, default ``~/.cache``), under a file lock so
two demos never install at once; later runs reuse it.

`ConnectorChild.start` runs `node connector.js`: ilp-connector with two ilp-plugin-btp listener
accounts, `alice` and `bob` (children, so ILDCP gives their clients `test.conn.alice` and
`test.conn.bob`), one-to-one rates, everything on 127.0.0.1. The child is in its own session
(the terminal's Ctrl-C reaches only us, and we stop it in order) and exits when its stdin
closes, so it ends with this process even when this process is killed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The ilp-connector version package-lock.json pins (connector.js reports the one it runs).
CONNECTOR_VERSION = "23.0.2"
PROJECT_DIR = Path(__file__).resolve().parent / "connector_js"
SCRIPT = "connector.js"
STAMP = ".ilp-paychan-stamp"
NPM_CI = ("ci", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error")
#: The npm install gives up after this long (it takes a few seconds with a warm npm cache).
INSTALL_TIMEOUT = 600.0
#: How long the child may take to print its ready line.
READY_TIMEOUT = 30.0
#: How long the child may take to stop after its stdin closed, before it is killed.
STOP_GRACE = 3.0


class ConnectorUnavailableError(RuntimeError):
    """The connector cannot run here: Node.js or npm missing, or the install or start failed."""


@dataclass(frozen=True)
class ConnectorAccount:
    """One BTP listener account of the connector: the URL (with secret) its client dials."""

    url: str
    address: str


def missing_tools() -> str | None:
    """Why the connector cannot run on this machine (node or npm not on PATH), or None."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH"
    return None


def _digest() -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((PROJECT_DIR / name).read_bytes())
    return digest.hexdigest()


def install_dir() -> Path:
    """Where the npm project for the pinned lock file is (or will be) installed."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ilp-paychan" / f"connector-{_digest()[:16]}"


def _is_installed(directory: Path, digest: str) -> bool:
    stamp = directory / "node_modules" / STAMP
    return stamp.is_file() and stamp.read_text() == digest


def _copy_if_changed(source: Path, target: Path) -> None:
    data = source.read_bytes()
    if target.is_file() and target.read_bytes() == data:
        return
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, target)


@contextlib.contextmanager
def _locked(directory: Path, on_wait: Any) -> Iterator[None]:
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.with_name(directory.name + ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with on_wait("waiting for another ilp-paychan to finish installing ilp-connector"):
                fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_installed(*, quiet: bool = False) -> Path:
    """Install the pinned connector with `npm ci --omit=dev` unless the cache has it; its path.

    Shows a spinner on stderr while npm runs (unless `quiet`). Raises
    ConnectorUnavailableError naming the cause when node/npm are missing or npm fails.
    """
    missing = missing_tools()
    if missing is not None:
        raise ConnectorUnavailableError(missing)
    digest = _digest()
    directory = install_dir()
    from rich.console import Console

    console = Console(stderr=True, quiet=quiet)
    try:
        with _locked(directory, console.status):
            directory.mkdir(parents=True, exist_ok=True)
            for name in ("package.json", "package-lock.json", SCRIPT):
                _copy_if_changed(PROJECT_DIR / name, directory / name)
            if _is_installed(directory, digest):
                return directory
            npm = shutil.which("npm")
            assert npm is not None
            with console.status(
                f"installing ilp-connector {CONNECTOR_VERSION} with npm (first run only)"
            ):
                result = subprocess.run(
                    [npm, *NPM_CI],
                    cwd=directory,
                    capture_output=True,
                    text=True,
                    timeout=INSTALL_TIMEOUT,
                    check=False,
                )
            if result.returncode != 0:
                tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
                raise ConnectorUnavailableError(
                    f"npm ci in {directory} failed (exit {result.returncode}): " + " / ".join(tail)
                )
            (directory / "node_modules" / STAMP).write_text(digest)
            console.print(
                f"installed ilp-connector {CONNECTOR_VERSION} into {directory}",
                highlight=False,
                soft_wrap=True,
            )
            return directory
    except subprocess.TimeoutExpired as exc:
        raise ConnectorUnavailableError(
            f"npm ci in {directory} took longer than {INSTALL_TIMEOUT:.0f} s"
        ) from exc
    except OSError as exc:
        raise ConnectorUnavailableError(f"cannot install into {directory}: {exc}") from exc


class ConnectorChild:
    """A running `node connector.js`; start with `await ConnectorChild.start(directory)`."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._drains = [
            asyncio.ensure_future(self._drain(proc.stderr, self._stderr)),
        ]
        self.version = CONNECTOR_VERSION
        self.address = ""
        self.accounts: dict[str, ConnectorAccount] = {}

    @classmethod
    async def start(
        cls, directory: Path, *, max_packet_amount: int | None = None
    ) -> ConnectorChild:
        """Run the connector from an installed `directory`; return once it is listening.

        `max_packet_amount` caps what one packet from `alice` may carry (the connector answers
        F08 above it). Raises ConnectorUnavailableError, with the child's last log lines, when
        it does not get ready; the child is stopped then.
        """
        node = shutil.which("node")
        if node is None:
            raise ConnectorUnavailableError("node is not on PATH")
        options: dict[str, Any] = {}
        if max_packet_amount is not None:
            options["maxPacketAmount"] = str(max_packet_amount)
        proc = await asyncio.create_subprocess_exec(
            node,
            SCRIPT,
            json.dumps(options),
            cwd=directory,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        child = cls(proc)
        try:
            await asyncio.wait_for(child._read_ready(), READY_TIMEOUT)
        except TimeoutError:
            await child.close()
            raise ConnectorUnavailableError(
                f"ilp-connector was not ready within {READY_TIMEOUT:.0f} s: {child.log_tail()}"
            ) from None
        except BaseException:
            await child.close()
            raise
        return child

    async def _read_ready(self) -> None:
        stdout = self._proc.stdout
        assert stdout is not None
        while True:
            line = await stdout.readline()
            if not line:
                await self._proc.wait()
                raise ConnectorUnavailableError(
                    f"ilp-connector exited ({self._proc.returncode}) before it was ready: "
                    + self.log_tail()
                )
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("event") == "fatal":
                raise ConnectorUnavailableError(f"ilp-connector failed: {message.get('error')}")
            if message.get("event") == "ready":
                self.version = str(message["version"])
                self.address = str(message["address"])
                self.accounts = {
                    name: ConnectorAccount(url=str(entry["url"]), address=str(entry["address"]))
                    for name, entry in message["accounts"].items()
                }
                self._drains.append(asyncio.ensure_future(self._drain(stdout, None)))
                return

    @staticmethod
    async def _drain(
        stream: asyncio.StreamReader | None, keep: collections.deque[str] | None
    ) -> None:
        if stream is None:
            return
        while line := await stream.readline():
            if keep is not None:
                keep.append(line.decode(errors="replace").rstrip())

    def log_tail(self) -> str:
        """The child's last log lines (stderr), for an error message."""
        return " | ".join(self._stderr) or "(no log output)"

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._proc.pid

    async def close(self) -> None:
        """Stop the child: close its stdin, then kill it if it has not exited within a moment."""
        proc = self._proc
        if proc.returncode is None:
            if proc.stdin is not None:
                with contextlib.suppress(Exception):
                    proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for task in self._drains:
            task.cancel()
        await asyncio.gather(*self._drains, return_exceptions=True)


async def connector_plugins(
    stack: AsyncExitStack, max_packet_amount: int, *, directory: Path | None = None
) -> tuple[Any, Any, str]:
    """(receiver, payer, path): two connected `BtpPlugin` clients of a fresh connector child,
    `bob` and `alice`. `stack` stops them and the child; `path` names the route for the report.
    """
    from ilp_paychan.v2.plugin import BtpPlugin

    if directory is None:
        directory = await asyncio.to_thread(ensure_installed, quiet=True)
    child = await ConnectorChild.start(directory, max_packet_amount=max_packet_amount)
    stack.push_async_callback(child.close)
    receiver: Any = BtpPlugin({"server": child.accounts["bob"].url})
    await receiver.connect()
    stack.push_async_callback(receiver.disconnect)
    payer: Any = BtpPlugin({"server": child.accounts["alice"].url})
    await payer.connect()
    stack.push_async_callback(payer.disconnect)
    return receiver, payer, f"alice → ilp-connector {child.version} → bob"


def resolve_link(link: str, *, quiet: bool = False) -> tuple[str, str | None]:
    """The link `demo --stream` uses for `--link` and why it fell back, if it did.

    `auto` is the connector when Node.js and npm are there and it installs, our own BTP link
    otherwise (the reason comes back as one line); `connector` insists and raises
    ConnectorUnavailableError; `btp` and `v1` are taken as given. Installs on first use.
    """
    if link not in ("auto", "connector"):
        return link, None
    try:
        ensure_installed(quiet=quiet)
    except ConnectorUnavailableError as exc:
        if link == "connector":
            raise
        return "btp", f"no ilp-connector ({exc}): paying over our own two-party BTP link instead"
    return "connector", None
