"""Store URL rules shared by every layer: memory spellings, masking, checking without opening."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ilp_paychan.ledger.store_url import check_store_url, is_memory_url, redact_url


@pytest.mark.parametrize(
    ("store", "expected"),
    [
        ("memory:", True),
        ("memory://", True),
        ("memory", True),
        ("memory:x", False),
        ("sqlite:///m.db", False),
        (None, False),
    ],
)
def test_the_memory_spellings(store: object, expected: bool) -> None:
    assert is_memory_url(store) is expected


def test_redact_url_hides_passwords_only() -> None:
    assert redact_url("postgresql://ilp:pw@db:5432/x") == "postgresql://ilp:***@db:5432/x"
    assert redact_url("sqlite:////var/x.db") == "sqlite:////var/x.db"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://u:pw-secret@h/0", "unknown store URL scheme 'redis'"),
        ("sqlite://u:pw-secret@host/x.db", "got 'sqlite://u:***@host/x.db'"),
        ("sqlite:///x.db?synchronous=OFF", "synchronous must be FULL, NORMAL or EXTRA"),
        ("postgresql:db", "a PostgreSQL URL looks like postgresql://"),
        ("postgresql://u:pw-secret@h/db?schema=A-B", "schema must be a lowercase SQL identifier"),
    ],
)
def test_bad_urls_are_refused_without_their_password(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        check_store_url(url)
    assert message in str(caught.value)
    assert "pw-secret" not in str(caught.value)


def test_checking_opens_nothing(tmp_path: Path) -> None:
    check_store_url(f"sqlite:///{tmp_path}/ledger.db")
    check_store_url("postgresql://ilp@127.0.0.1:1/ledger?schema=ilp")
    assert list(tmp_path.iterdir()) == []
