"""`ilp-paychan serve`: runs every configured ledger until SIGINT/SIGTERM.

Life of the process:
1. read and validate the configuration (a bad one: one line on stderr, exit 2);
2. start the admin endpoint, create one plugin per ledger, attach metrics, connect them all
   (listeners bind, clients dial with back-off until the server answers);
3. log one `ready` line, then serve;
4. on SIGINT/SIGTERM: every plugin's `disconnect()` refuses new prepares, lets in-flight requests
   finish within the shutdown bound and closes its sockets and store; then exit 0.

The shell holds no transfer logic. Its one extra is the optional per-ledger `receiverSecret`:
an end receiver for tests and demos that fulfils a transfer whose condition is
SHA-256(HMAC-SHA256(receiverSecret, ilp bytes)) and rejects any other (see docs/config.md).

A v2 ledger (`"plugin": "ilp-plugin-btp"`) runs a `BtpPlugin` the same way. Nothing in `serve`
decides what to do with the packets it receives, as for a v1 ledger: without `receiverSecret` it
registers no data handler, so the plugin answers every Prepare with an F02 Reject at once (where
a v1 ledger leaves an incoming transfer to expire); with it, the same test receiver answers,
over the Prepare's data instead of the v1 `ilp` bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import logging
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from ilp_paychan import __version__
from ilp_paychan.errors import FulfillmentPendingError
from ilp_paychan.plugin.events import TRANSFER_EVENTS
from ilp_paychan.shell.config import (
    RECEIVER_SECRET,
    ConfigError,
    LedgerSettings,
    ServeSettings,
    load_settings,
    make_store_dir,
    mask_secrets,
)
from ilp_paychan.shell.event_loop import run as run_on_loop
from ilp_paychan.shell.logs import configure_logging, log_event

log = logging.getLogger("ilp_paychan.serve")
_REVERTED = "incoming_fulfill_reverted"

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
#: Client back-off between failed first connections: doubles up to the cap. The cap is short
#: because a peer that is restarting is usually back within a second or two.
RETRY_FIRST, RETRY_CAP = 0.1, 1.0


def serve_main(args: argparse.Namespace) -> int:
    """Runs `serve` for parsed arguments; returns the exit code."""
    try:
        settings = load_settings(args.config, args.data_dir)
        admin = _admin_address(args.admin)
    except ConfigError as exc:
        print(f"ilp-paychan serve: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(args.log_format, args.log_level)
    runner = Server(settings, admin=admin, shutdown_timeout=args.shutdown_timeout)
    try:
        return run_on_loop(runner.run())
    except KeyboardInterrupt:  # a signal before the handlers were installed
        return EXIT_OK


def _admin_address(text: str) -> tuple[str, int] | None:
    from ilp_paychan.shell.admin import parse_address

    if text.lower() in ("none", "off", ""):
        return None
    try:
        return parse_address(text)
    except ValueError as exc:
        raise ConfigError(str(exc), field="--admin") from None


@dataclass
class _Ledger:
    settings: LedgerSettings
    plugin: Any
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


class Server:
    """One serve process: the plugins, their metrics and the admin endpoint."""

    def __init__(
        self,
        settings: ServeSettings,
        *,
        admin: tuple[str, int] | None,
        shutdown_timeout: float,
    ) -> None:
        self.settings = settings
        self.admin_address = admin
        self.shutdown_timeout = shutdown_timeout
        self.state = "starting"
        self._stop = asyncio.Event()
        self._ledgers: list[_Ledger] = []

    async def run(self) -> int:
        """Start every ledger and the admin port, serve until SIGINT/SIGTERM, then stop them
        all; returns the process's exit code."""
        from ilp_paychan.shell.metrics import Metrics

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal, signum)
        for name, plugin_name in self.settings.skipped:
            log_event(log, "ledger_skipped", logging.WARNING, ledger=name, plugin=plugin_name)

        self.metrics = Metrics()
        try:
            self._create_plugins()
        except ConfigError as exc:  # the plugin's own checks found what config.py did not
            print(f"ilp-paychan serve: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        admin = None
        code = EXIT_OK
        try:
            admin = self._start_admin(loop)
            self._attach_plugins()
            if await self._connect_all():
                self.state = "ready"
                log_event(
                    log,
                    "ready",
                    ledgers=len(self._ledgers),
                    admin=admin.url if admin else "none",
                    version=__version__,
                )
                await self._stop.wait()
        except _StartError as exc:
            log_event(log, "start_failed", logging.ERROR, **exc.fields)
            code = EXIT_FAILED
        await self._shutdown()
        if admin is not None:
            await asyncio.to_thread(admin.stop)
        log_event(log, "stopped", exit_code=code)
        return code

    def _on_signal(self, signum: int) -> None:
        if self._stop.is_set():
            log_event(
                log,
                "signal_ignored",
                signal=signal.Signals(signum).name,
                reason="already shutting down",
            )
            return
        log_event(
            log, "shutdown", signal=signal.Signals(signum).name, timeout=self.shutdown_timeout
        )
        self._stop.set()

    def _start_admin(self, loop: asyncio.AbstractEventLoop) -> Any:
        if self.admin_address is None:
            return None
        from ilp_paychan.shell.admin import AdminServer

        try:
            admin = AdminServer(self.admin_address, loop, self._status, self.metrics.exposition)
        except OSError as exc:
            host, port = self.admin_address
            raise _StartError(
                component="admin endpoint",
                address=f"{host}:{port}",
                error=exc.strerror or str(exc),
                hint="use --admin HOST:PORT to pick another address (port 0 takes a free one), "
                "or --admin none to run without it",
            ) from None
        admin.start()
        log_event(log, "admin_listening", url=admin.url)
        return admin

    def _create_plugins(self) -> None:
        """Constructs every plugin (no I/O yet), so option errors surface before anything runs."""
        from ilp_paychan import Plugin
        from ilp_paychan.errors import PluginError
        from ilp_paychan.v2.plugin import BtpPlugin

        for ledger in self.settings.ledgers:
            options = dict(ledger.options)
            try:
                if ledger.kind == "btp":
                    plugin: Any = BtpPlugin(options)
                else:
                    options.setdefault("shutdownTimeout", self.shutdown_timeout)
                    plugin = Plugin(options)
            except (PluginError, ValueError, TypeError) as exc:
                raise ConfigError(_safe_error(exc, ledger), ledger=ledger.name) from None
            self._ledgers.append(_Ledger(ledger, plugin))

    def _attach_plugins(self) -> None:
        for entry in self._ledgers:
            ledger, plugin = entry.settings, entry.plugin
            make_store_dir(ledger.store_url)
            self.metrics.attach(ledger.name, plugin, _status_info(ledger))
            self._log_transfers(entry)
            if ledger.receiver_secret is not None and ledger.kind == "btp":
                plugin.register_data_handler(_V2Receiver(ledger.receiver_secret, plugin))
            elif ledger.receiver_secret is not None:
                plugin.on("incoming_prepare", _Receiver(entry, ledger.receiver_secret))
            log_event(log, "ledger_configured", **ledger.describe())

    def _log_transfers(self, entry: _Ledger) -> None:
        name = entry.settings.name
        plugin = entry.plugin
        plugin.on("connect", lambda: log_event(log, "connected", ledger=name))
        plugin.on("disconnect", lambda: log_event(log, "disconnected", ledger=name))
        if entry.settings.kind == "btp":  # no transfer events; its `error` event is worth a line
            plugin.on("error", lambda exc: self._plugin_error(entry, exc))
            return
        # A fulfilment the sender refused as too late is money we thought we had: always said.
        plugin.on(_REVERTED, _TransferLogger(name, _REVERTED, logging.WARNING))
        if not log.isEnabledFor(logging.DEBUG):
            return
        for event in TRANSFER_EVENTS:
            if event != _REVERTED:
                plugin.on(event, _TransferLogger(name, event))

    def _plugin_error(self, entry: _Ledger, exc: BaseException) -> None:
        log_event(
            log,
            "plugin_error",
            logging.WARNING,
            ledger=entry.settings.name,
            error=_safe_error(exc, entry.settings),
        )

    async def _connect_all(self) -> bool:
        """Connects every ledger; False when a stop was requested first."""
        connecting = [asyncio.ensure_future(self._connect(entry)) for entry in self._ledgers]
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            pending: set[asyncio.Future[Any]] = {*connecting}
            while pending:
                done, pending = await asyncio.wait(
                    pending | {stop}, return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(stop)
                for future in done:
                    if future is not stop:
                        future.result()  # re-raises a _StartError
                if stop.done():
                    for future in pending:
                        future.cancel()
                    return False
            return True
        finally:
            stop.cancel()
            for future in connecting:
                if not future.done():
                    future.cancel()

    async def _connect(self, entry: _Ledger) -> None:
        from ilp_paychan.errors import PeerTimeoutError, UnreachableError

        # worth retrying: the peer or the database not reachable yet; anything else (refused
        # credentials, unreadable files, a store schema from a newer version) is permanent
        transient = (UnreachableError, PeerTimeoutError, OSError, TimeoutError)
        ledger = entry.settings
        delay = RETRY_FIRST
        failures = 0
        while True:
            try:
                await entry.plugin.connect()
            except Exception as exc:
                if ledger.role == "listener" or not isinstance(exc, transient):
                    raise _StartError(ledger=ledger.name, error=_safe_error(exc, ledger)) from None
                failures += 1
                if failures <= 3 or failures % 60 == 0:  # a long outage: about once a minute
                    log_event(
                        log,
                        "connect_retry",
                        logging.WARNING,
                        ledger=ledger.name,
                        error=_safe_error(exc, ledger),
                        retry_in=delay,
                        failures=failures,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_CAP)
                continue
            fields: dict[str, Any] = {"ledger": ledger.name}
            account = _account(entry)
            if account:
                fields["account"] = account
            port = listener_port(entry.plugin)
            if port is not None:
                fields["port"] = port
            log_event(log, "ledger_up", **fields)
            return

    async def _shutdown(self) -> None:
        self.state = "stopping"

        async def close(entry: _Ledger) -> None:
            name = entry.settings.name
            if entry.tasks:  # let fulfils already decided reach the store before closing it
                await asyncio.wait(list(entry.tasks), timeout=self.shutdown_timeout)
            try:
                await asyncio.wait_for(entry.plugin.disconnect(), self.shutdown_timeout + 5)
            except TimeoutError:
                log_event(log, "disconnect_timeout", logging.WARNING, ledger=name)
            except Exception as exc:
                log_event(
                    log,
                    "disconnect_failed",
                    logging.WARNING,
                    ledger=name,
                    error=_safe_error(exc, entry.settings),
                )
            for task in list(entry.tasks):
                task.cancel()

        await asyncio.gather(*(close(entry) for entry in self._ledgers))

    async def _status(self) -> dict[str, Any]:
        ledgers = await self.metrics.snapshot()
        return {"version": __version__, "state": self.state, "ledgers": ledgers}


class _StartError(Exception):
    def __init__(self, **fields: Any) -> None:
        super().__init__(fields)
        self.fields = fields


class _Receiver:
    """Fulfils incoming transfers whose condition derives from the ILP packet and the secret."""

    def __init__(self, entry: _Ledger, secret: bytes) -> None:
        self._entry = entry
        self._secret = secret

    def __call__(self, transfer: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._settle(transfer))
        self._entry.tasks.add(task)
        task.add_done_callback(self._entry.tasks.discard)

    async def _settle(self, transfer: dict[str, Any]) -> None:
        from ilp_paychan.codec.condition import b64url_decode, b64url_encode

        plugin = self._entry.plugin
        fulfillment = receiver_fulfillment(self._secret, transfer.get("ilp"))
        try:
            condition = b64url_decode(str(transfer.get("executionCondition", "")))
        except ValueError:
            condition = b""
        try:
            if hashlib.sha256(fulfillment).digest() == condition:
                await plugin.fulfill_condition(transfer["id"], b64url_encode(fulfillment))
            else:
                await plugin.reject_incoming_transfer(
                    transfer["id"],
                    {
                        "code": "F05",
                        "name": "Wrong Condition",
                        "message": "condition does not match this receiver",
                    },
                )
        except FulfillmentPendingError:
            # Not a failure: committed here, and the Fulfill is re-sent until the sender
            # answers; incoming_fulfill_confirmed or incoming_fulfill_reverted tells the end.
            log_event(
                log,
                "receiver_pending",
                ledger=self._entry.settings.name,
                transfer=transfer.get("id"),
            )
        except Exception as exc:  # the peer gone or the transfer expired meanwhile
            log_event(
                log,
                "receiver_failed",
                logging.WARNING,
                ledger=self._entry.settings.name,
                transfer=transfer.get("id"),
                error=f"{type(exc).__name__}: {exc}",
            )


class _V2Receiver:
    """The `receiverSecret` receiver of a v2 ledger, as its data handler: fulfils a Prepare
    whose condition is SHA-256(HMAC-SHA256(secret, the Prepare's data)), rejects any other F05."""

    def __init__(self, secret: bytes, plugin: Any) -> None:
        from ilp_paychan.codec.ilp4 import IlpReject, encode_reject

        self._secret = secret
        self._wrong = encode_reject(
            IlpReject("F05", plugin.settings.address, "condition does not match this receiver")
        )

    async def __call__(self, raw: bytes) -> bytes:
        from ilp_paychan.codec.ilp4 import IlpFulfill, decode_prepare, encode_fulfill

        prepare = decode_prepare(raw)  # the plugin has checked it already
        fulfillment = hmac.new(self._secret, prepare.data, hashlib.sha256).digest()
        if hashlib.sha256(fulfillment).digest() != prepare.execution_condition:
            return self._wrong
        return encode_fulfill(IlpFulfill(fulfillment))


def receiver_fulfillment(secret: bytes, ilp: str | None) -> bytes:
    """The fulfillment a `receiverSecret` receiver gives for a transfer carrying `ilp`."""
    from ilp_paychan.codec.condition import b64url_decode

    packet = b64url_decode(ilp) if ilp else b""
    return hmac.new(secret, packet, hashlib.sha256).digest()


class _TransferLogger:
    def __init__(self, ledger: str, event: str, level: int = logging.DEBUG) -> None:
        self._ledger = ledger
        self._event = event
        self._level = level

    def __call__(self, transfer: dict[str, Any], *_rest: Any) -> None:
        log_event(
            log,
            self._event,
            self._level,
            ledger=self._ledger,
            transfer=transfer.get("id"),
            amount=transfer.get("amount"),
        )


def _status_info(ledger: LedgerSettings) -> dict[str, Any]:
    info = ledger.describe()
    info.pop("ledger", None)
    if ledger.currency:
        info["currency"] = ledger.currency
    return info


def _account(entry: _Ledger) -> str:
    """Our ILP address on the ledger: a v1 plugin's account; a v2 plugin's `address` option
    (or the prefix its `ildcp` hands out), empty when it has none."""
    if entry.settings.kind == "btp":
        return str(entry.plugin.settings.address)
    return str(entry.plugin.get_account())


def listener_port(plugin: Any) -> int | None:
    """The port a connected listener plugin is bound to (useful with port 0), else None."""
    value = getattr(plugin, "listener_port", None)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _safe_error(exc: BaseException, ledger: LedgerSettings) -> str:
    """`Type: message` with every secret of the ledger's options blanked out."""
    options = dict(ledger.options)
    if ledger.receiver_secret:
        options[RECEIVER_SECRET] = ledger.receiver_secret.decode(errors="replace")
    return mask_secrets(f"{type(exc).__name__}: {exc}", options).replace("\n", " ")
