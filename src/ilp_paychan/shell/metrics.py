"""Prometheus metrics and the `/status` snapshot of running plugins.

Counters are fed by plugin events (`plugin.on`) and by the plugin's observer interface
(`round_trip`, `link_changed`, and a v2 plugin's `packet`: ILPv4 packets by direction, type and
reject code, see `v2.observe`); gauges that need the store (balance, prepared count) are
refreshed on the asyncio loop just before each scrape, so the hot path pays for nothing but a
counter increment. A private `CollectorRegistry` keeps two `serve`s in one process (tests)
apart.

The balance gauge is a float because Prometheus samples are floats; it is the only place money
becomes a float, and only for display. `/status` carries the exact decimal strings.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ilp_paychan.v2.interface import PluginV2
from ilp_paychan.v2.observe import PACKET_KINDS

log = logging.getLogger(__name__)

DIRECTIONS = ("incoming", "outgoing")
#: BTP round trips on loopback take well under a millisecond; over a WAN, tens to hundreds.
ROUND_TRIP_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

#: event name -> (counter attribute, direction)
_EVENT_COUNTERS = {
    "incoming_prepare": ("prepares", "incoming"),
    "outgoing_prepare": ("prepares", "outgoing"),
    "incoming_fulfill": ("fulfills", "incoming"),
    "outgoing_fulfill": ("fulfills", "outgoing"),
    "incoming_reject": ("rejects", "incoming"),
    "outgoing_reject": ("rejects", "outgoing"),
    "incoming_cancel": ("expiries", "incoming"),
    "outgoing_cancel": ("expiries", "outgoing"),
}


@dataclass
class LedgerState:
    """What the shell knows of one ledger between scrapes (link state, reconnects)."""

    name: str
    plugin: Any
    info: dict[str, Any]
    link_up: bool = False
    ever_up: bool = False
    reconnects: int = 0
    last_change: float = field(default_factory=time.time)
    #: A v2 plugin's packets so far, by (direction, type, reject code): what /status shows.
    packets: dict[tuple[str, str, str], int] = field(default_factory=dict)


class Metrics:
    """The metric families of one process, and the ledgers feeding them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        by_dir = ["ledger", "direction"]
        self.prepares = Counter(
            "ilp_paychan_prepares", "Transfers prepared, by direction.", by_dir, registry=reg
        )
        self.fulfills = Counter(
            "ilp_paychan_fulfills", "Transfers fulfilled, by direction.", by_dir, registry=reg
        )
        self.rejects = Counter(
            "ilp_paychan_rejects", "Transfers rejected, by direction.", by_dir, registry=reg
        )
        self.expiries = Counter(
            "ilp_paychan_expiries",
            "Transfers cancelled on expiry, by direction.",
            by_dir,
            registry=reg,
        )
        self.balance = Gauge(
            "ilp_paychan_balance",
            "Fulfilled balance (incoming - outgoing) in ledger units; float for display only.",
            ["ledger"],
            registry=reg,
        )
        self.in_flight = Gauge(
            "ilp_paychan_in_flight_transfers",
            "Prepared transfers the plugin tracks (awaiting fulfil, reject or expiry).",
            ["ledger"],
            registry=reg,
        )
        self.connected = Gauge(
            "ilp_paychan_connected",
            "1 when the peer link is authenticated and open.",
            ["ledger"],
            registry=reg,
        )
        self.reconnects = Counter(
            "ilp_paychan_reconnects",
            "Times the peer link came back after being lost.",
            ["ledger"],
            registry=reg,
        )
        self.round_trip = Histogram(
            "ilp_paychan_btp_round_trip_seconds",
            "Time from sending a BTP request to its answer, by request kind.",
            ["ledger", "kind"],
            buckets=ROUND_TRIP_BUCKETS,
            registry=reg,
        )
        self.v2_packets = Counter(
            "ilp_paychan_v2_packets",
            "ILPv4 packets and BTP 2.0 money transfers of a v2 plugin, by direction (of the"
            " Prepare, or of the money), type (prepare, fulfill, reject, money) and reject code.",
            ["ledger", "direction", "type", "code"],
            registry=reg,
        )
        self.ledgers: dict[str, LedgerState] = {}

    def attach(self, name: str, plugin: Any, info: dict[str, Any] | None = None) -> LedgerState:
        """Subscribes to a plugin's events and observer calls; `info` goes into /status as is."""
        state = LedgerState(name=name, plugin=plugin, info=dict(info or {}))
        self.ledgers[name] = state
        if isinstance(plugin, PluginV2):  # no transfer events: its observer counts packets
            for direction in DIRECTIONS:
                for kind in ("prepare", "fulfill", "money"):
                    self.v2_packets.labels(name, direction, kind, "")
        else:
            for event, (attr, direction) in _EVENT_COUNTERS.items():
                child = getattr(self, attr).labels(name, direction)
                plugin.on(event, _Increment(child))
            for attr in ("prepares", "fulfills", "rejects", "expiries"):
                for direction in DIRECTIONS:
                    getattr(self, attr).labels(name, direction)  # export zeros from the start
        self.connected.labels(name).set(0)
        self.reconnects.labels(name)
        add_observer = getattr(plugin, "add_observer", None)
        if add_observer is not None:
            add_observer(_Observer(self, state))
        else:
            plugin.on("connect", lambda *_: self.link_changed(state, True))
            plugin.on("disconnect", lambda *_: self.link_changed(state, False))
        return state

    def link_changed(self, state: LedgerState, up: bool) -> None:
        """Record that a ledger's peer link came up or went down; a comeback counts a reconnect."""
        if up == state.link_up:
            return
        state.link_up = up
        state.last_change = time.time()
        self.connected.labels(state.name).set(1 if up else 0)
        if up:
            if state.ever_up:
                state.reconnects += 1
                self.reconnects.labels(state.name).inc()
            state.ever_up = True

    async def snapshot(self) -> dict[str, dict[str, Any]]:
        """Reads each ledger's numbers (on the loop) and updates the gauges from them."""
        out: dict[str, dict[str, Any]] = {}
        for name, state in self.ledgers.items():
            try:
                entry = await _ledger_snapshot(state)
            except Exception as exc:  # a store being closed, a ledger not yet connected
                log.debug("status of %s failed: %r", name, exc)
                entry = {**state.info, "connected": False, "error": type(exc).__name__}
            out[name] = entry
            if "balance" in entry:
                self.balance.labels(name).set(float(int(entry["balance"])))
            if entry.get("in_flight") is not None:
                self.in_flight.labels(name).set(entry["in_flight"])
        return out

    def exposition(self) -> bytes:
        """The registry in Prometheus text format, for `GET /metrics`."""
        return bytes(generate_latest(self.registry))

    def sample(self, metric: str, labels: dict[str, str]) -> float | None:
        """One sample's current value from the registry, or None if it was never set."""
        return self.registry.get_sample_value(metric, labels)


class _Increment:
    """An event callback that counts; a class rather than a lambda so it is cheap and named."""

    __slots__ = ("_child",)

    def __init__(self, child: Any) -> None:
        self._child = child

    def __call__(self, *_args: Any) -> None:
        self._child.inc()


class _Observer:
    """What the plugin calls on its hot path: must be fast and never raise."""

    def __init__(self, metrics: Metrics, state: LedgerState) -> None:
        self._metrics = metrics
        self._state = state
        self._children: dict[str, Any] = {}

    def round_trip(self, kind: str, seconds: float) -> None:
        child = self._children.get(kind)
        if child is None:
            child = self._metrics.round_trip.labels(self._state.name, kind)
            self._children[kind] = child
        child.observe(seconds)

    def link_changed(self, up: bool) -> None:
        self._metrics.link_changed(self._state, up)

    def packet(self, direction: str, kind: str, code: str) -> None:
        key = f"{direction} {kind} {code}"
        child = self._children.get(key)
        if child is None:
            child = self._metrics.v2_packets.labels(self._state.name, direction, kind, code)
            self._children[key] = child
        child.inc()
        counts = self._state.packets
        label = (direction, kind, code)
        counts[label] = counts.get(label, 0) + 1


async def _ledger_snapshot(state: LedgerState) -> dict[str, Any]:
    plugin = state.plugin
    if isinstance(plugin, PluginV2):
        return await _v2_snapshot(state)
    log_ = plugin.transfer_log
    prepared = await log_.list_prepared()
    connected = bool(plugin.is_connected())
    in_flight_count = getattr(plugin, "in_flight_count", None)
    entry: dict[str, Any] = {
        **state.info,
        "connected": connected,
        "peer_connected": state.link_up,
        "reconnects": state.reconnects,
        "balance": await log_.get_balance(),
        "maxBalance": await log_.get_maximum(),
        "minBalance": await log_.get_minimum(),
        "prepared": len(prepared),
        "in_flight": in_flight_count() if in_flight_count is not None else None,
    }
    if connected:
        entry["account"] = plugin.get_account()
        entry["peer_account"] = plugin.get_peer_account()
    return entry


async def _v2_snapshot(state: LedgerState) -> dict[str, Any]:
    """A v2 ledger has packets, not a transfer log: the link, the packet counts, and the
    balance when the plugin keeps one (its trustline's `get_balance()`)."""
    plugin = state.plugin
    packets: dict[str, dict[str, int]] = {d: dict.fromkeys(PACKET_KINDS, 0) for d in DIRECTIONS}
    codes: dict[str, dict[str, int]] = {d: {} for d in DIRECTIONS}
    for (direction, kind, code), count in sorted(state.packets.items()):
        packets[direction][kind] += count
        if kind == "reject":
            codes[direction][code] = codes[direction].get(code, 0) + count
    entry: dict[str, Any] = {
        **state.info,
        # as for a v1 ledger: connected is listening (a listener) or dialled in (a client)
        "connected": getattr(plugin, "listener_port", None) is not None
        or bool(plugin.is_connected()),
        "peer_connected": state.link_up,
        "reconnects": state.reconnects,
        "packets": packets,
        "reject_codes": codes,
    }
    entry.update(await _v2_balance(getattr(plugin, "accounting", None)))
    return entry


async def _v2_balance(accounting: Any) -> dict[str, Any]:
    """A v2 trustline's balance, limits and held amounts as decimal strings (v1's names for
    the limits); nothing without a trustline, or while its store is closed (not connected)."""
    from ilp_paychan.errors import NotConnectedError

    get_balance = getattr(accounting, "get_balance", None)
    if not callable(get_balance):
        return {}
    try:
        numbers = dict(await get_balance())
    except NotConnectedError:
        return {}
    limits = getattr(getattr(accounting, "settings", None), "balance", None)
    if limits is not None:
        numbers["maxBalance"] = "Infinity" if limits.maximum is None else str(limits.maximum)
        numbers["minBalance"] = "-Infinity" if limits.minimum is None else str(limits.minimum)
        if limits.settle_threshold is not None:
            numbers["settleThreshold"] = str(limits.settle_threshold)
            numbers["settleTo"] = str(limits.settle_to)
    return numbers
