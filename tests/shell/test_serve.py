"""`ilp-paychan serve` as a subprocess with each example config, against a plugin in the test.

The served ledger gets a `receiverSecret` so it acts as an end receiver: the test's client pays
it with conditions derived from that secret (fulfilled) or with wrong ones (rejected).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import signal
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ilp_paychan import Plugin, open_backend
from ilp_paychan.codec.condition import b64url_encode

from .conftest import (
    ServeProcess,
    free_port,
    load_example,
    metric_value,
    only_ledger,
    run_cli,
    wait_until,
    write_config,
)

RECEIVER = "receiver-secret-for-tests"
PREFIX = "g.eur.mytrustline."
WAIT = 30.0


def receiver_condition(ilp: bytes, secret: str = RECEIVER) -> str:
    fulfillment = hmac.new(secret.encode(), ilp, hashlib.sha256).digest()
    return b64url_encode(hashlib.sha256(fulfillment).digest())


class Payer:
    """Sends transfers from a plugin and waits for each one's outcome (bounded)."""

    def __init__(self, plugin: Plugin) -> None:
        self.plugin = plugin
        self.outcomes: dict[str, asyncio.Future[str]] = {}
        plugin.on("outgoing_fulfill", lambda t, *_: self._done(t, "fulfilled"))
        plugin.on("outgoing_reject", lambda t, *_: self._done(t, "rejected"))
        plugin.on("outgoing_cancel", lambda t, *_: self._done(t, "expired"))

    def _done(self, transfer: dict[str, Any], outcome: str) -> None:
        future = self.outcomes.get(transfer["id"])
        if future is not None and not future.done():
            future.set_result(outcome)

    async def pay(self, amount: int, *, matching: bool = True, expires_in: float = 20.0) -> str:
        """Returns the transfer's id once its outcome is known; the outcome is in `outcomes`."""
        ilp = os.urandom(24)
        condition = receiver_condition(ilp) if matching else b64url_encode(os.urandom(32))
        transfer = {
            "id": str(uuid.uuid4()),
            "amount": str(amount),
            "to": self.plugin.get_peer_account(),
            "executionCondition": condition,
            "expiresAt": (datetime.now(UTC) + timedelta(seconds=expires_in)).isoformat(),
            "ilp": b64url_encode(ilp),
        }
        self.outcomes[transfer["id"]] = asyncio.get_running_loop().create_future()
        await self.plugin.send_transfer(transfer)
        await asyncio.wait_for(self.outcomes[transfer["id"]], WAIT)
        return str(transfer["id"])


def server_config(tmp_path: Path, example: str = "server.json", **options: Any) -> tuple[Path, int]:
    prefix, entry = only_ledger(load_example(example))
    port = free_port()
    entry["options"]["listener"]["port"] = port
    entry["options"]["receiverSecret"] = RECEIVER
    entry["options"].update(options)
    return write_config(tmp_path / example, {prefix: entry}), port


async def scrape(serve: ServeProcess) -> tuple[dict[str, Any], str, str]:
    """(/status JSON, /metrics text, /metrics content type)."""
    status = await asyncio.to_thread(serve.status)
    _, ctype, body = await asyncio.to_thread(serve.get, "/metrics")
    return status, body.decode(), ctype


async def test_server_example_serves_a_client_with_metrics_status_and_clean_exit(
    tmp_path: Path, serve_factory: Any
) -> None:
    config, port = server_config(tmp_path)
    serve = serve_factory(config, tmp_path / "data")
    await asyncio.to_thread(serve.wait_ready)
    client = Plugin(
        {
            "server": f"btp+ws://:shared_secret@127.0.0.1:{port}",
            "store": f"sqlite:///{tmp_path}/client.db",
            "maxBalance": "1000000000",
        }
    )
    await client.connect()
    try:
        payer = Payer(client)
        paid = await asyncio.gather(*(payer.pay(10 + i) for i in range(20)))
        refused = await asyncio.gather(*(payer.pay(5, matching=False) for _ in range(2)))
        assert [payer.outcomes[i].result() for i in paid] == ["fulfilled"] * 20
        assert [payer.outcomes[i].result() for i in refused] == ["rejected"] * 2
        total = sum(10 + i for i in range(20))
        assert await client.get_balance() == str(-total)

        status, metrics, ctype = await scrape(serve)
        ledger = status["ledgers"][PREFIX]
        assert status["state"] == "ready"
        assert ledger["connected"] is True
        assert ledger["peer_connected"] is True
        assert ledger["balance"] == str(total)
        assert ledger["maxBalance"] == "1000000000"
        assert ledger["minBalance"] == "-100"
        assert ledger["prepared"] == 0
        assert "shared_secret" not in json.dumps(status)

        assert ctype.startswith("text/plain")
        labels = {"ledger": PREFIX, "direction": "incoming"}
        assert metric_value(metrics, "ilp_paychan_prepares_total", **labels) == 22
        assert metric_value(metrics, "ilp_paychan_fulfills_total", **labels) == 20
        assert metric_value(metrics, "ilp_paychan_rejects_total", **labels) == 2
        assert metric_value(metrics, "ilp_paychan_expiries_total", **labels) == 0
        assert metric_value(metrics, "ilp_paychan_balance", ledger=PREFIX) == total
        assert metric_value(metrics, "ilp_paychan_connected", ledger=PREFIX) == 1
        assert metric_value(metrics, "ilp_paychan_reconnects_total", ledger=PREFIX) == 0
        fulfill_trips = metric_value(
            metrics, "ilp_paychan_btp_round_trip_seconds_count", ledger=PREFIX, kind="fulfill"
        )
        assert fulfill_trips is not None
        assert fulfill_trips >= 20

        admin = serve.admin_url.removeprefix("http://")
        shown = await asyncio.to_thread(run_cli, "status", "--admin", admin)
        assert shown.returncode == 0, shown.stderr
        assert PREFIX in shown.stdout
        assert str(total) in shown.stdout
        raw = await asyncio.to_thread(run_cli, "status", "--admin", admin, "--json")
        assert json.loads(raw.stdout)["ledgers"][PREFIX]["balance"] == str(total)
    finally:
        await client.disconnect()
    assert await asyncio.to_thread(serve.stop) == 0
    assert serve.events_named("stopped")
    assert not [e for e in serve.events if e.get("level") == "error"], serve.log_text()
    assert "shared_secret" not in serve.log_text()
    assert RECEIVER not in serve.log_text()


async def test_client_example_from_connector_ledgers_env_against_a_listener(
    tmp_path: Path, serve_factory: Any
) -> None:
    port = free_port()
    server = Plugin(
        {
            "listener": {"port": port, "host": "127.0.0.1"},
            "incomingSecret": "shared_secret",
            "prefix": PREFIX,
            "info": {"prefix": PREFIX, "currencyCode": "EUR", "currencyScale": 9, "connectors": []},
            "maxBalance": "1000",
            "minBalance": "-1000000",
            "store": "memory:",
        }
    )
    prefix, entry = only_ledger(load_example("client.json"))
    entry["options"]["server"] = f"btp+ws://:shared_secret@127.0.0.1:{port}"
    entry["options"]["receiverSecret"] = RECEIVER
    env = {"CONNECTOR_LEDGERS": json.dumps({prefix: entry})}
    serve = serve_factory(None, tmp_path / "data", env=env)
    # the server is not up yet: the client retries until it is
    await asyncio.to_thread(wait_until, lambda: serve.events_named("connect_retry"), "a retry")
    await server.connect()
    try:
        await asyncio.to_thread(serve.wait_ready)
        payer = Payer(server)
        paid = await asyncio.gather(*(payer.pay(7) for _ in range(10)))
        assert {payer.outcomes[i].result() for i in paid} == {"fulfilled"}
        assert await server.get_balance() == "-70"
        status, metrics, _ = await scrape(serve)
        assert status["ledgers"][PREFIX]["role"] == "client"
        assert status["ledgers"][PREFIX]["store"] == "stateless"
        assert status["ledgers"][PREFIX]["balance"] == "70"
        assert (
            metric_value(metrics, "ilp_paychan_fulfills_total", ledger=PREFIX, direction="incoming")
            == 10
        )
        assert await asyncio.to_thread(serve.stop, signal.SIGINT) == 0
    finally:
        await server.disconnect()


async def test_tls_server_example_serves_a_wss_client(
    tmp_path: Path, serve_factory: Any, tls_dir: Path
) -> None:
    prefix, entry = only_ledger(load_example("tls-server.json"))
    port = free_port()
    entry["options"]["listener"]["port"] = port
    entry["options"]["receiverSecret"] = RECEIVER
    config = write_config(tls_dir.parent / f"tls-server-{port}.json", {prefix: entry})
    serve = serve_factory(config, tmp_path / "data")
    await asyncio.to_thread(serve.wait_ready)
    assert serve.events_named("ledger_configured")[0]["tls"] is True

    _, client_entry = only_ledger(load_example("tls-client.json"))
    options = dict(client_entry["options"])
    options["server"] = f"btp+wss://:shared_secret@127.0.0.1:{port}"
    options["ca"] = str(tls_dir / "ca.crt")
    options["store"] = f"sqlite:///{tmp_path}/client.db"
    client = Plugin(options)
    await client.connect()
    try:
        payer = Payer(client)
        transfer_id = await payer.pay(42)
        assert payer.outcomes[transfer_id].result() == "fulfilled"
        status, _, _ = await scrape(serve)
        assert status["ledgers"][prefix]["balance"] == "42"
    finally:
        await client.disconnect()
    assert await asyncio.to_thread(serve.stop) == 0


@pytest.mark.postgres
async def test_postgres_pair_examples_connect_and_report(
    tmp_path: Path, serve_factory: Any, postgres_url: str
) -> None:
    port = free_port()
    serves = []
    for name in ("postgres-server.json", "postgres-client.json"):
        prefix, entry = only_ledger(load_example(name))
        role = "server" if "server" in name else "client"
        entry["store"] = (
            f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema=t_{role}_{port}"
        )
        if role == "server":
            entry["options"]["listener"]["port"] = port
        else:
            entry["options"]["server"] = f"btp+ws://:another_shared_secret@127.0.0.1:{port}"
        config = write_config(tmp_path / name, {prefix: entry})
        serves.append(serve_factory(config, tmp_path / f"data-{role}"))
    for serve in serves:
        await asyncio.to_thread(serve.wait_ready)
    for serve in serves:
        await asyncio.to_thread(
            wait_until,
            lambda s=serve: s.status()["ledgers"][prefix].get("peer_connected") is True,
            "the pair to connect",
        )
        status, metrics, _ = await scrape(serve)
        ledger = status["ledgers"][prefix]
        assert ledger["balance"] == "0"
        assert ledger["maxBalance"] == "5000000"
        assert ledger["store"].startswith("postgresql://")
        assert "change-me" not in json.dumps(status)
        assert metric_value(metrics, "ilp_paychan_connected", ledger=prefix) == 1
    for serve in reversed(serves):
        assert await asyncio.to_thread(serve.stop) == 0


async def test_single_options_example_with_text_logs_and_sigint(
    tmp_path: Path, serve_factory: Any
) -> None:
    document = load_example("single-options.json")
    document["listener"]["port"] = free_port()
    document["store"] = f"sqlite:///{tmp_path}/single.db"
    config = write_config(tmp_path / "single.json", document)
    serve = serve_factory(config, tmp_path / "data", "--log-format", "text")
    await asyncio.to_thread(serve.wait_ready)
    status, _, _ = await scrape(serve)
    assert list(status["ledgers"]) == ["example.red."]
    assert await asyncio.to_thread(serve.stop, signal.SIGINT) == 0
    assert any(" ready " in line for line in serve.lines)
    assert not serve.events  # text mode: no JSON lines


async def test_listener_port_in_use_exits_1_with_one_error_line(
    tmp_path: Path, serve_factory: Any
) -> None:
    config, port = server_config(tmp_path)
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", port)
    try:
        serve = serve_factory(config, tmp_path / "data")
        code = await asyncio.to_thread(serve.proc.wait, WAIT)
    finally:
        blocker.close()
        await blocker.wait_closed()
    assert code == 1
    failures = serve.events_named("start_failed")
    assert len(failures) == 1
    assert failures[0]["ledger"] == PREFIX


async def test_sigterm_during_load_loses_no_transfer(tmp_path: Path, serve_factory: Any) -> None:
    config, port = server_config(tmp_path)
    data = tmp_path / "data"
    serve = serve_factory(config, data, "--shutdown-timeout", "5")
    await asyncio.to_thread(serve.wait_ready)
    client_store = f"sqlite:///{tmp_path}/client.db"
    client = Plugin(
        {
            "server": f"btp+ws://:shared_secret@127.0.0.1:{port}",
            "store": client_store,
            "maxBalance": "1000000000",
            "requestTimeout": 2,
        }
    )
    await client.connect()
    payer = Payer(client)
    sent: list[str] = []
    fulfilled = 0
    stop_sending = asyncio.Event()

    async def keep_paying() -> None:
        nonlocal fulfilled
        while not stop_sending.is_set() and len(sent) < 5000:
            try:
                transfer_id = await payer.pay(3, expires_in=12)
            except Exception:
                stop_sending.set()  # the server went away: stop offering new transfers
                return
            sent.append(transfer_id)
            fulfilled += payer.outcomes[transfer_id].result() == "fulfilled"

    workers = [asyncio.create_task(keep_paying()) for _ in range(20)]
    try:
        await asyncio.wait_for(_until(lambda: fulfilled >= 150), WAIT)
        serve.proc.send_signal(signal.SIGTERM)  # while 20 payments are in flight
        assert await asyncio.to_thread(serve.stop) == 0
        stop_sending.set()
        await asyncio.wait(workers, timeout=WAIT)
        attempted = list(payer.outcomes)

        restarted = serve_factory(config, data, "--shutdown-timeout", "5")
        await asyncio.to_thread(restarted.wait_ready)
        # every transfer ends fulfilled (a Fulfill re-delivered after the restart) or expired
        await asyncio.wait_for(_until_settled(client, restarted), 40)
        client_balance = await client.get_balance()
        assert await asyncio.to_thread(restarted.stop) == 0
    finally:
        stop_sending.set()
        for worker in workers:
            worker.cancel()
        await client.disconnect()

    server_backend = await open_backend("sqlite:///" + str(data / f"{PREFIX.rstrip('.')}.db"))
    client_backend = await open_backend(client_store)
    try:
        server_log = server_backend.get_transfer_log("")
        client_log = client_backend.get_transfer_log("")
        assert await server_log.get_balance() == str(-int(client_balance))
        assert int(client_balance) <= -3 * 150
        for transfer_id in attempted:
            mine = await _state(client_log, transfer_id)
            theirs = await _state(server_log, transfer_id)
            assert (mine == "fulfilled") == (theirs == "fulfilled"), (transfer_id, mine, theirs)
            assert mine != "prepared"
            assert theirs != "prepared"
    finally:
        await server_backend.close()
        await client_backend.close()


async def _until(condition: Any) -> None:
    while not condition():  # noqa: ASYNC110 - polls a counter other tasks update
        await asyncio.sleep(0.02)


async def _until_settled(client: Plugin, serve: ServeProcess) -> None:
    while True:
        status = await asyncio.to_thread(serve.status)
        mine = await client.transfer_log.list_prepared()
        notices = await client.transfer_log.list_peer_notices()
        if not mine and not notices and status["ledgers"][PREFIX].get("prepared") == 0:
            return
        await asyncio.sleep(0.2)


async def _state(log: Any, transfer_id: str) -> str | None:
    from ilp_paychan.errors import TransferNotFoundError

    try:
        return str((await log.get(transfer_id))["state"])
    except TransferNotFoundError:
        return None
