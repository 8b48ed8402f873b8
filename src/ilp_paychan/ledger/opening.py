"""Opening a store by URL, and the error that says why a store could not be opened.

What this is for: "unable to open database file" or "Connect call failed" alone does not tell an
operator which store, which file or what to fix. A failure to open is raised as `StoreOpenError`,
whose message names the store (its URL with any password masked), the file or database, and the
cause in words: the path is a folder, a folder is missing, a file or folder is read-only,
PostgreSQL cannot be reached, or it refused the credentials. A URL that is malformed stays a
`ValueError` (nothing was tried).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ilp_paychan.errors import PluginError
from ilp_paychan.ledger.store_url import check_store_url, is_memory_url, redact_url

if TYPE_CHECKING:
    from ilp_paychan.ledger.store import LedgerStore


class StoreOpenError(PluginError):
    """A store could not be opened; `str()` names the store, its location and the cause."""

    def __init__(self, store: str, location: str, cause: str) -> None:
        super().__init__(f"cannot open store {store} ({location}): {cause}")
        self.store = store
        self.location = location
        self.cause = cause


class StoreUnreachableError(StoreOpenError, ConnectionError):
    """The store's server did not answer; worth trying again later (also a ConnectionError)."""


async def open_store_url(url: str) -> LedgerStore:
    """The store named by `url`, created or migrated as needed.

    Raises:
        ValueError: the URL is malformed or of an unknown scheme.
        StoreOpenError: the store exists in principle but cannot be opened (the cause named).
    """
    check_store_url(url)
    if is_memory_url(url):
        from ilp_paychan.ledger.memory import MemoryStore

        return MemoryStore()
    if url.startswith("sqlite:"):
        from ilp_paychan.ledger.sqlite import open_sqlite_store, sqlite_settings

        path, _ = sqlite_settings(url)
        try:
            return await open_sqlite_store(url)
        except ValueError:
            raise
        except Exception as exc:
            raise sqlite_open_error(url, path, exc) from exc
    from ilp_paychan.ledger.postgres import open_postgres_store

    try:
        return await open_postgres_store(url)
    except ValueError:
        raise
    except Exception as exc:
        raise postgres_open_error(url, exc) from exc


def sqlite_open_error(url: str, path: str, exc: BaseException) -> StoreOpenError:
    """The error for an SQLite file that failed to open, its cause found by looking at the path."""
    file = Path(path).absolute()
    folder = file.parent
    found = _sqlite_cause(file, folder)
    cause = _reason(exc) if found is None else f"{found} ({_reason(exc)})"
    return StoreOpenError(redact_url(url), f"path {file}", cause)


def _sqlite_cause(file: Path, folder: Path) -> str | None:
    if file.is_dir():
        return "the path is a folder, not a file"
    if not folder.exists():
        return f"the folder {folder} does not exist"
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if file.exists() and not os.access(file, os.R_OK | os.W_OK):
        return "the file is read-only for this user"
    if not os.access(folder, os.W_OK | os.X_OK):
        return (
            f"the folder {folder} is read-only for this user (SQLite creates the file and its "
            "-wal and -shm files there)"
        )
    return None


def postgres_open_error(url: str, exc: BaseException) -> StoreOpenError:
    """The error for a PostgreSQL database that failed to open: unreachable, refused or other."""
    import asyncpg

    parts = urlsplit(url)
    database = parts.path.lstrip("/") or parts.username or "(default)"
    try:
        port = parts.port or 5432
    except ValueError:
        port = 5432
    location = f"database {database!r} on {parts.hostname or 'localhost'}:{port}"
    store = redact_url(url)
    if isinstance(
        exc, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError
    ):
        user = parts.username or "(default)"
        return StoreOpenError(
            store, location, f"PostgreSQL refused the login as role {user!r}: {_reason(exc)}"
        )
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return StoreOpenError(store, location, f"the database does not exist: {_reason(exc)}")
    if isinstance(exc, OSError | TimeoutError | asyncpg.CannotConnectNowError):
        return StoreUnreachableError(store, location, f"PostgreSQL is unreachable: {_reason(exc)}")
    return StoreOpenError(store, location, _reason(exc))


def _reason(exc: BaseException) -> str:
    """The exception's own words on one line (an OSError's strerror when it has one)."""
    if isinstance(exc, OSError) and exc.errno:
        text = os.strerror(exc.errno)
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())
