"""Deciding whether the credentials of an auth Message are good (the last check of the auth).

The default rule is the reference's (empty username, token equal to `incomingSecret`) with the
token compared in constant time, so the time taken says nothing about how much of it matched.
A user's check may be sync or async; its result must be the boolean True to accept — an
awaitable or any other truthy object never is.
"""

from __future__ import annotations

import hmac
import inspect
import logging
from collections.abc import Awaitable, Callable

AuthCheck = Callable[[str, str], "bool | Awaitable[bool]"]

logger = logging.getLogger("ilp_paychan.transport")


def secret_auth_check(
    incoming_secret: str | None, *, any_username: bool = False
) -> Callable[[str, str], bool]:
    """The reference's rule: username ``""`` and token == `incoming_secret`; None refuses all.

    With `any_username` the username is not looked at (ilp-plugin-btp's rule for BTP 2.0: its
    clients send the URL's user part, often empty, and its listener checks the token only).
    """
    secret = None if incoming_secret is None else incoming_secret.encode("utf-8")

    def check(username: str, token: str) -> bool:
        if secret is None:
            return False
        token_ok = hmac.compare_digest(token.encode("utf-8"), secret)
        return token_ok and (any_username or username == "")

    return check


async def run_auth_check(check: AuthCheck, username: str, token: str) -> bool:
    """Run a sync or async check; anything but True (or a raised exception) refuses."""
    try:
        result: object = check(username, token)
        if inspect.isawaitable(result):
            result = await result
    except Exception:
        logger.exception("auth_check raised; refusing the connection")
        return False
    if result is True:
        return True
    if result is not False:
        logger.error(
            "auth_check returned %s instead of a bool; refusing the connection",
            type(result).__name__,
        )
    return False
