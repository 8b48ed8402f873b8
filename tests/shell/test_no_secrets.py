"""No secret ever leaves the process: not in logs (at DEBUG), error messages, /metrics or /status.

A served listener (PostgreSQL store whose URL carries a password, incomingSecret, receiverSecret,
debug logs) is paid by an in-process client (its logs captured at DEBUG too), refused a wrong
token, and scraped; a client-role serve retries a server whose URL holds a token; a listener whose
store refuses the connection fails to start. Every secret is a distinctive string searched for in
everything that came out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from ilp_paychan import Plugin
from ilp_paychan.codec.condition import b64url_encode
from ilp_paychan.errors import NotAcceptedError
from ilp_paychan.transport import BtpClient

from .conftest import ServeProcess, free_port, run_cli, wait_until, write_config
from .test_serve import receiver_condition

PREFIX = "g.nosecrets."
INCOMING = "Inc0ming-Secret-7f3a9"
RECEIVER = "Rcv-Secret-b41c2"
DB_PASSWORD = "Db-Passw0rd-93e1d"
DEAD_DB_PASSWORD = "Dead-Db-Passw0rd-5aa0"
WRONG_TOKEN = "Wr0ng-Guess-c0ffee"
CLIENT_TOKEN = "Client-Token-4d2b8"
SECRETS = (INCOMING, RECEIVER, DB_PASSWORD, DEAD_DB_PASSWORD, WRONG_TOKEN, CLIENT_TOKEN)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}:{password}@{host}"))


def listener_ledger(port: int, store: str) -> dict[str, Any]:
    return {
        PREFIX: {
            "currency": "EUR",
            "store": store,
            "options": {
                "listener": {"port": port, "host": "127.0.0.1"},
                "incomingSecret": INCOMING,
                "receiverSecret": RECEIVER,
                "maxBalance": "1000000",
                "info": {"prefix": PREFIX, "currencyCode": "EUR", "currencyScale": 2},
            },
        }
    }


async def pay(plugin: Plugin, amount: int, *, matching: bool = True) -> str:
    """One transfer to the served end receiver; its outcome once known."""
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    ilp = os.urandom(24)
    transfer = {
        "id": str(uuid.uuid4()),
        "amount": str(amount),
        "to": plugin.get_peer_account(),
        "executionCondition": (
            receiver_condition(ilp, RECEIVER) if matching else b64url_encode(os.urandom(32))
        ),
        "expiresAt": (datetime.now(UTC) + timedelta(seconds=20)).isoformat(),
        "ilp": b64url_encode(ilp),
    }

    def settled(name: str) -> Any:
        def record(done: dict[str, Any], *_: Any) -> None:
            if done["id"] == transfer["id"] and not outcome.done():
                outcome.set_result(name)

        return record

    plugin.on("outgoing_fulfill", settled("fulfilled"))
    plugin.on("outgoing_reject", settled("rejected"))
    await plugin.send_transfer(transfer)
    return await asyncio.wait_for(outcome, 30)


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


async def test_no_secret_in_logs_errors_metrics_or_status(
    tmp_path: Path, serve_factory: Any, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ilp_paychan")
    port = free_port()
    joiner = "&" if "?" in postgres_url else "?"
    store = with_password(f"{postgres_url}{joiner}schema=nosec", DB_PASSWORD)
    config = write_config(tmp_path / "server.json", listener_ledger(port, store))
    serve: ServeProcess = serve_factory(config, tmp_path / "data", "--log-level", "debug")
    await asyncio.to_thread(serve.wait_ready)
    errors: list[str] = []

    client = Plugin({"server": f"btp+ws://:{INCOMING}@127.0.0.1:{port}", "prefix": PREFIX})
    await client.connect()
    try:
        outcomes = [await pay(client, 5) for _ in range(3)]
        outcomes.append(await pay(client, 5, matching=False))
        assert outcomes == ["fulfilled", "fulfilled", "fulfilled", "rejected"]
        intruder = BtpClient(f"btp+ws://:{WRONG_TOKEN}@127.0.0.1:{port}")
        with pytest.raises(NotAcceptedError) as refused:
            await intruder.start()
        errors.append(str(refused.value))
        errors.append(repr(refused.value))
        status = await asyncio.to_thread(serve.status)
        metrics = (await asyncio.to_thread(serve.get, "/metrics"))[2].decode()
        assert await asyncio.to_thread(serve.stop, signal.SIGTERM) == 0
        # the client now redials a URL that holds the secret, and logs its failures
        await asyncio.to_thread(
            wait_until, lambda: "reconnect attempt 2" in caplog.text, "failed redials logged"
        )
    finally:
        await client.disconnect()
    assert status["ledgers"][PREFIX]["balance"] == "15"
    assert status["ledgers"][PREFIX]["store"].startswith("postgresql://")

    # a client-role serve whose server is not there: it retries and says why, without the token
    nobody = free_port()
    client_config = write_config(
        tmp_path / "client.json",
        {PREFIX: {"options": {"server": f"btp+ws://:{CLIENT_TOKEN}@127.0.0.1:{nobody}"}}},
    )
    retrying: ServeProcess = serve_factory(client_config, tmp_path / "c", "--log-level", "debug")
    await asyncio.to_thread(wait_until, lambda: retrying.events_named("connect_retry"), "a retry")
    retrying.kill()

    # a listener whose database refuses the connection: one start_failed line, exit 1
    dead_store = f"postgresql://postgres:{DEAD_DB_PASSWORD}@127.0.0.1:{free_port()}/db"
    dead = write_config(tmp_path / "dead.json", listener_ledger(free_port(), dead_store))
    failed = await asyncio.to_thread(
        run_cli, "serve", "--config", str(dead), "--admin", "none", "--log-level", "debug"
    )
    assert failed.returncode == 1, failed.stderr
    assert "start_failed" in failed.stderr

    # the bad config path: a secret-bearing field of the wrong kind is described, not shown
    bad = write_config(tmp_path / "bad.json", listener_ledger(free_port(), store))
    document = json.loads(bad.read_text())
    document[PREFIX]["options"]["maxBalance"] = f"12{INCOMING}"
    document[PREFIX]["options"]["listener"]["port"] = "x"
    bad.write_text(json.dumps(document))
    refused_config = await asyncio.to_thread(run_cli, "serve", "--config", str(bad))
    assert refused_config.returncode == 2

    outputs = {
        "served listener's log": serve.log_text(),
        "retrying client's log": retrying.log_text(),
        "failed start": failed.stdout + failed.stderr,
        "config error": refused_config.stdout + refused_config.stderr,
        "in-process client's log": caplog.text,
        "error messages": "\n".join(errors),
        "/metrics": metrics,
        "/status": json.dumps(status),
    }
    # the outputs are real: each shows what it is about
    assert "invalid auth token" in errors[0]
    assert "ilp_paychan_" in metrics
    assert "refused BTP auth" in serve.log_text()
    assert "connect_retry" in retrying.log_text()
    assert "btp+ws://:***@127.0.0.1" in caplog.text
    assert {name: leaks(text) for name, text in outputs.items() if leaks(text)} == {}
