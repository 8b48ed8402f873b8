"""parse_btp_url: the reference's URL rules and a token-free log form."""

from __future__ import annotations

import pytest

from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.transport.url import BtpUrl, parse_btp_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "btp+wss://user:shhh%20secret@example.com/rpc",
            BtpUrl("wss://example.com/rpc", "user", "shhh secret"),
        ),
        (
            "btp+wss://user:shhh secret@example.com/rpc",
            BtpUrl("wss://example.com/rpc", "user", "shhh secret"),
        ),
        ("btp+ws://:secret@127.0.0.1:1234", BtpUrl("ws://127.0.0.1:1234", "", "secret")),
        ("btp+ws://h:1", BtpUrl("ws://h:1", "", "")),
        ("btp+ws://u@h:1/p?q=1", BtpUrl("ws://h:1/p?q=1", "u", "")),
        ("btp+ws://a%40b:t:o@k@h:1", BtpUrl("ws://h:1", "a@b", "t:o@k")),
        ("BTP+WS://:s%C3%A9@[::1]:9/x", BtpUrl("ws://[::1]:9/x", "", "sé")),
    ],
)
def test_parses_scheme_credentials_and_target(url: str, expected: BtpUrl) -> None:
    assert parse_btp_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "ws://h:1",
        "http://h:1",
        "btp+http://h:1",
        "btp+ws:h:1",
        "btp+ws://:t@",
        "btp+ws://h:notaport",
        "btp+ws://h:70000",
        "btp+ws://h:1/#frag",
        "btp+ws://u:%zz@h:1",
        "btp+ws://u:%ff@h:1",
    ],
)
def test_refuses_bad_urls_naming_server(url: str) -> None:
    with pytest.raises(InvalidFieldsError, match="server"):
        parse_btp_url(url)


def test_the_scheme_error_is_the_reference_text() -> None:
    with pytest.raises(
        InvalidFieldsError, match=r'server protocol must be "btp\+wss:" or "btp\+ws:"'
    ):
        parse_btp_url("https://h")


def test_token_stays_out_of_repr_and_redacted_form() -> None:
    parsed = parse_btp_url("btp+wss://alice:hunter2@example.com:443/rpc")
    assert "hunter2" not in repr(parsed)
    assert parsed.redacted() == "btp+wss://alice:***@example.com:443/rpc"
    assert parsed.secure
    assert parse_btp_url("btp+ws://h:1").redacted() == "btp+ws://h:1"


def test_errors_never_echo_the_token() -> None:
    with pytest.raises(InvalidFieldsError) as caught:
        parse_btp_url("btp+ws://u:hunter2%zz@h:1")
    assert "hunter2" not in str(caught.value)
