"""Unit tests of the shell's small parts: metrics fed by a fake plugin, the admin endpoint, logs."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from ilp_paychan.shell.admin import AdminServer, parse_address
from ilp_paychan.shell.logs import configure_logging, log_event
from ilp_paychan.shell.metrics import Metrics

from .conftest import metric_value


class FakeLog:
    async def get_balance(self) -> str:
        return "-12"

    async def get_maximum(self) -> str:
        return "Infinity"

    async def get_minimum(self) -> str:
        return "-100"

    async def list_prepared(self) -> list[dict[str, Any]]:
        return [{"transfer": {"id": "a"}}]


class FakePlugin:
    """Only what the metrics read: events, observers, a transfer log."""

    def __init__(self) -> None:
        self.listeners: dict[str, list[Any]] = defaultdict(list)
        self.observers: list[Any] = []
        self.transfer_log = FakeLog()

    def on(self, name: str, callback: Any) -> None:
        self.listeners[name].append(callback)

    def emit(self, name: str, *args: Any) -> None:
        for callback in self.listeners[name]:
            callback(*args)

    def add_observer(self, observer: Any) -> None:
        self.observers.append(observer)

    def is_connected(self) -> bool:
        return True

    def get_account(self) -> str:
        return "g.x.server"

    def get_peer_account(self) -> str:
        return "g.x.client"

    def in_flight_count(self) -> int:
        return 1


async def test_events_and_observer_calls_become_samples() -> None:
    metrics = Metrics()
    plugin = FakePlugin()
    metrics.attach("g.x.", plugin, {"role": "listener"})
    transfer = {"id": "a", "amount": "5"}
    plugin.emit("incoming_prepare", transfer)
    plugin.emit("incoming_prepare", transfer)
    plugin.emit("outgoing_fulfill", transfer, "f", None)
    plugin.emit("incoming_cancel", transfer, {"code": "R00"})
    (observer,) = plugin.observers
    observer.round_trip("prepare", 0.003)
    observer.link_changed(True)
    observer.link_changed(False)
    observer.link_changed(True)

    status = await metrics.snapshot()
    text = metrics.exposition().decode()
    assert (
        metric_value(text, "ilp_paychan_prepares_total", ledger="g.x.", direction="incoming") == 2
    )
    assert (
        metric_value(text, "ilp_paychan_prepares_total", ledger="g.x.", direction="outgoing") == 0
    )
    assert (
        metric_value(text, "ilp_paychan_fulfills_total", ledger="g.x.", direction="outgoing") == 1
    )
    assert (
        metric_value(text, "ilp_paychan_expiries_total", ledger="g.x.", direction="incoming") == 1
    )
    assert metric_value(text, "ilp_paychan_reconnects_total", ledger="g.x.") == 1
    assert metric_value(text, "ilp_paychan_connected", ledger="g.x.") == 1
    assert metric_value(text, "ilp_paychan_balance", ledger="g.x.") == -12
    assert metric_value(text, "ilp_paychan_in_flight_transfers", ledger="g.x.") == 1
    assert (
        metric_value(
            text, "ilp_paychan_btp_round_trip_seconds_count", ledger="g.x.", kind="prepare"
        )
        == 1
    )
    assert status["g.x."] == {
        "role": "listener",
        "connected": True,
        "peer_connected": True,
        "reconnects": 1,
        "balance": "-12",
        "maxBalance": "Infinity",
        "minBalance": "-100",
        "prepared": 1,
        "in_flight": 1,
        "account": "g.x.server",
        "peer_account": "g.x.client",
    }


async def test_two_metrics_objects_do_not_share_samples() -> None:
    first, second = Metrics(), Metrics()
    plugin = FakePlugin()
    first.attach("g.x.", plugin)
    second.attach("g.y.", FakePlugin())
    plugin.emit("incoming_prepare", {"id": "a"})
    assert "g.y." not in first.exposition().decode()
    assert "g.x." not in second.exposition().decode()


async def test_admin_endpoint_serves_metrics_status_and_404() -> None:
    metrics = Metrics()
    metrics.attach("g.x.", FakePlugin())

    async def refresh() -> dict[str, Any]:
        return {"ledgers": await metrics.snapshot()}

    admin = AdminServer(("127.0.0.1", 0), asyncio.get_running_loop(), refresh, metrics.exposition)
    admin.start()
    try:
        status = await asyncio.to_thread(_get, admin.url + "/status")
        assert json.loads(status)["ledgers"]["g.x."]["balance"] == "-12"
        text = (await asyncio.to_thread(_get, admin.url + "/metrics")).decode()
        assert "ilp_paychan_balance" in text
        with pytest.raises(urllib.error.HTTPError) as caught:
            await asyncio.to_thread(_get, admin.url + "/nope")
        assert caught.value.code == 404
    finally:
        await asyncio.to_thread(admin.stop)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as reply:
        body: bytes = reply.read()
        return body


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_address("[::1]:7770") == ("::1", 7770)
    for bad in ("7770", "host:port", ":1", "h:70000"):
        with pytest.raises(ValueError, match="expected"):
            parse_address(bad)


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    """configure_logging replaces the root handlers; put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    websockets_level = logging.getLogger("websockets").level
    yield
    logging.getLogger("websockets").setLevel(websockets_level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root_logger")
def test_json_log_lines_carry_the_event_fields() -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream)
    log_event(logging.getLogger("ilp_paychan.serve"), "ready", ledgers=2, admin="http://x")
    logging.getLogger("other").warning("plain %s", "message")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "ready"
    assert first["ledgers"] == 2
    assert first["level"] == "info"
    assert first["ts"].endswith("+00:00")
    assert second["msg"] == "plain message"


@pytest.mark.usefixtures("restore_root_logger")
def test_text_log_lines_are_event_then_key_values() -> None:
    stream = io.StringIO()
    configure_logging("text", "info", stream)
    log_event(logging.getLogger("ilp_paychan.serve"), "ready", ledgers=2, note="two words")
    assert stream.getvalue().rstrip().endswith('ready ledgers=2 note="two words"')
