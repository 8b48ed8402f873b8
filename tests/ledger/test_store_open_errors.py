"""A store that cannot be opened says which store (password masked), where, and why."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from ilp_paychan.errors import PluginError
from ilp_paychan.ledger import StoreOpenError, StoreUnreachableError, open_backend

PASSWORD = "pw-never-shown"

# Opens the store named by argv[1] as an unprivileged user (root ignores file permissions) and
# prints the error's class and text. Everything is imported before the privileges are dropped:
# the interpreter's own files may be readable by root only.
_OPEN_AS_USER = textwrap.dedent(
    """
    import asyncio, os, sys
    import ilp_paychan.ledger.opening, ilp_paychan.ledger.sqlite, ilp_paychan.ledger.memory
    from ilp_paychan.ledger import open_backend
    import concurrent.futures.thread, sqlite3
    if os.geteuid() == 0:
        os.setgid(65534)
        os.setuid(65534)

    async def main():
        try:
            backend = await open_backend(sys.argv[1])
        except Exception as exc:
            print(type(exc).__name__ + "|" + str(exc))
        else:
            await backend.close()
            print("opened|")

    asyncio.run(main())
    """
)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder another user can reach (pytest's tmp_path lives under a root-only folder)."""
    path = Path(tempfile.mkdtemp(prefix="ilp-store-open-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for folder in (path, *path.iterdir()):
            if folder.is_dir():
                folder.chmod(0o755)
        shutil.rmtree(path)


def open_as_user(url: str) -> tuple[str, str]:
    """(error class name, message) of opening `url` in a child process without root rights."""
    result = subprocess.run(
        [sys.executable, "-c", _OPEN_AS_USER, url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    kind, _, message = result.stdout.strip().partition("|")
    return kind, message


async def test_a_folder_instead_of_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "ledger.db").mkdir()
    url = f"sqlite:///{tmp_path}/ledger.db"
    with pytest.raises(StoreOpenError) as caught:
        await open_backend(url)
    assert str(caught.value).startswith(
        f"cannot open store {url} (path {tmp_path}/ledger.db): the path is a folder, not a file"
    )
    assert isinstance(caught.value, PluginError)
    assert not isinstance(caught.value, OSError)  # permanent: not worth retrying


async def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/absent/ledger.db"
    with pytest.raises(StoreOpenError) as caught:
        await open_backend(url)
    assert str(caught.value).startswith(
        f"cannot open store {url} (path {tmp_path}/absent/ledger.db): "
        f"the folder {tmp_path}/absent does not exist"
    )
    assert not (tmp_path / "absent").exists()


def test_a_read_only_file_is_named(shared_dir: Path) -> None:
    file = shared_dir / "ledger.db"
    file.write_bytes(b"")
    file.chmod(0o444)
    url = f"sqlite:///{file}"
    kind, message = open_as_user(url)
    assert kind == "StoreOpenError", message
    assert message.startswith(
        f"cannot open store {url} (path {file}): the file is read-only for this user"
    )


def test_a_read_only_folder_is_named(shared_dir: Path) -> None:
    folder = shared_dir / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    url = f"sqlite:///{folder}/ledger.db"
    kind, message = open_as_user(url)
    assert kind == "StoreOpenError", message
    assert message.startswith(
        f"cannot open store {url} (path {folder}/ledger.db): the folder {folder} is read-only "
        "for this user"
    )
    assert not (folder / "ledger.db").exists()


async def test_a_malformed_url_stays_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        await open_backend(f"sqlite:///{tmp_path}/x.db?synchronous=SOMETIMES")
    assert not (tmp_path / "x.db").exists()


async def test_an_unreachable_postgres_is_named_with_the_password_masked() -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://ilp:{PASSWORD}@127.0.0.1:{port}/ledger"
    with pytest.raises(StoreUnreachableError) as caught:
        await open_backend(url)
    message = str(caught.value)
    assert message.startswith(
        f"cannot open store postgresql://ilp:***@127.0.0.1:{port}/ledger "
        f"(database 'ledger' on 127.0.0.1:{port}): PostgreSQL is unreachable: "
    )
    assert PASSWORD not in message
    assert isinstance(caught.value, ConnectionError)  # transient: a caller may retry


@pytest.mark.postgres
async def test_a_refused_postgres_login_is_named(postgres_url: str) -> None:
    parts = urlsplit(postgres_url)
    netloc = f"no_such_role_ilp:{PASSWORD}@{parts.hostname}:{parts.port or 5432}"
    url = urlunsplit(parts._replace(netloc=netloc))
    with pytest.raises(StoreOpenError) as caught:
        await open_backend(url)
    message = str(caught.value)
    database = parts.path.lstrip("/")
    assert message.startswith(
        f"cannot open store {url.replace(PASSWORD, '***')} (database {database!r} on "
        f"{parts.hostname}:{parts.port or 5432}): PostgreSQL refused the login as role "
        "'no_such_role_ilp': "
    )
    assert "no_such_role_ilp" in message.split(": ", 2)[-1]
    assert PASSWORD not in message
    assert not isinstance(caught.value, OSError)
