"""The auth check: constant-time default rule, and strict handling of user checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from ilp_paychan.transport.auth import run_auth_check, secret_auth_check


def test_default_rule_is_empty_username_and_equal_token() -> None:
    check = secret_auth_check("shared_secret")
    assert check("", "shared_secret")
    assert not check("", "shared_secreT")
    assert not check("user", "shared_secret")
    assert not check("", "")


def test_default_rule_without_a_secret_refuses_everyone() -> None:
    check = secret_auth_check(None)
    assert not check("", "")
    assert not check("", "None")


def test_default_rule_handles_non_ascii_tokens() -> None:
    check = secret_auth_check("sécret")
    assert check("", "sécret")
    assert not check("", "secret")


async def _yes(username: str, token: str) -> bool:
    return True


async def _no(username: str, token: str) -> bool:
    return False


def _raises(username: str, token: str) -> bool:
    raise RuntimeError("database down")


async def _truthy_object(username: str, token: str) -> object:
    return "yes"


def _returns_coroutine_of_false(username: str, token: str) -> Awaitable[bool]:
    return _no(username, token)


@pytest.mark.parametrize(
    ("check", "accepted"),
    [
        (lambda u, t: True, True),
        (lambda u, t: False, False),
        (_yes, True),
        (_no, False),
        (_returns_coroutine_of_false, False),
        (_raises, False),
        (_truthy_object, False),
        (lambda u, t: 1, False),
    ],
)
async def test_user_checks_accept_only_true(check: Callable[..., object], accepted: bool) -> None:
    assert await run_auth_check(check, "u", "t") is accepted  # type: ignore[arg-type]
