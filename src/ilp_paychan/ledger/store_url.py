"""Store URLs: which ones mean "in memory", how to show one safely, and checking one without
opening it.

Every layer that names a store asks this module, so the plugin's option check, the CLI's config
check and `open_backend` agree on what a store URL is.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

#: The spellings of the in-process store.
MEMORY_URLS = frozenset({"memory:", "memory://", "memory"})


def is_memory_url(store: object) -> bool:
    """Whether `store` names the in-process store (which forgets everything on exit)."""
    return isinstance(store, str) and store in MEMORY_URLS


def redact_url(url: str) -> str:
    """The URL with any password or token in its userinfo replaced by `***`, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None and "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def check_store_url(url: str) -> None:
    """Refuse a URL `open_backend` could not open, without opening anything.

    Raises:
        ValueError: an unknown scheme, or a malformed SQLite or PostgreSQL URL (the message
            never shows a password).
    """
    if is_memory_url(url):
        return
    if url.startswith("sqlite:"):
        from ilp_paychan.ledger.sqlite import sqlite_settings

        try:
            sqlite_settings(url)
        except ValueError as exc:  # its message quotes the URL: mask a password in it
            raise ValueError(str(exc).replace(url, redact_url(url))) from None
        return
    if url.startswith(("postgresql:", "postgres:")):
        from ilp_paychan.ledger.postgres import split_url

        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError("a PostgreSQL URL looks like postgresql://USER@HOST:PORT/DATABASE")
        split_url(url)
        return
    scheme = url.split(":", 1)[0] if ":" in url else url[:20]
    raise ValueError(
        f"unknown store URL scheme {scheme!r}: expected memory:, sqlite:///PATH or postgresql://..."
    )
