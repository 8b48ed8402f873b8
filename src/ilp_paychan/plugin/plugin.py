"""`Plugin`: the Ledger Plugin Interface over one BTP peer link and one TransferLog.

What this module is for: turning the public LPI calls and the peer's BTP requests into the state
machine's transitions (`transfers.py`), the ledger's commits and the events, in a fixed order:
a BTP Response to a Prepare, Fulfill or Reject goes out only after the ledger change it
acknowledges is committed, and events fire after that commit. It never decides a transfer's fate
itself and never touches sockets directly (only `PeerLink`). The peer's requests are answered by
`incoming.py`, which gets the few collaborators it uses, not the Plugin.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Container, Mapping
from types import TracebackType
from typing import Any, ClassVar

from ilp_paychan.codec.btp import (
    ContentType,
    Message,
    Packet,
    Prepare,
    ProtocolData,
    Response,
)
from ilp_paychan.codec.errors import CodecError
from ilp_paychan.codec.ilp import encode_ilp
from ilp_paychan.codec.int64 import decode_int64
from ilp_paychan.errors import (
    AlreadyRolledBackError,
    FulfillmentPendingError,
    InvalidFieldsError,
    NotAcceptedError,
    NotConnectedError,
    PeerError,
    RequestHandlerAlreadyRegisteredError,
    StoreUnavailableError,
    UnreachableError,
)
from ilp_paychan.ledger import FULFILLED, Backend, PrepareOutcome, TransferLog
from ilp_paychan.ledger.on_demand import OnDemandStore
from ilp_paychan.ledger.store_url import is_memory_url
from ilp_paychan.plugin.events import EVENT_NAMES, EventEmitter
from ilp_paychan.plugin.expiry import ExpiryScheduler
from ilp_paychan.plugin.hooks import SettlementHooks
from ilp_paychan.plugin.incoming import IncomingRequests, RequestHandlerFn
from ilp_paychan.plugin.lifecycle import Lifecycle
from ilp_paychan.plugin.notices import Outcome, PeerNotices
from ilp_paychan.plugin.options import (
    TRUSTLINE,
    OptionPolicy,
    PluginSettings,
    normalise_options,
    parse_settings,
    require_prefix_and_info,
)
from ilp_paychan.plugin.protocol_data import (
    decode_entry,
    entries_by_name,
    lpi_fields,
    to_protocol_data,
)
from ilp_paychan.plugin.reasons import (
    expiry_error,
    outgoing_reason,
    rejection_error,
)
from ilp_paychan.plugin.retention import prune_settled_periodically
from ilp_paychan.plugin.services import HookServices
from ilp_paychan.plugin.sweep import ExpirySweep
from ilp_paychan.plugin.transfers import Entry, TransferBook
from ilp_paychan.plugin.validate import (
    Validator,
    b64url,
    canonical_id,
    check_prefix,
    parse_base64,
    parse_hash32,
)
from ilp_paychan.transport.peer import PeerLink

log = logging.getLogger("ilp_paychan.plugin")

_OCTETS = int(ContentType.OCTET_STREAM)
#: Seconds before an expiry that failed because the store was unavailable is tried again.
EXPIRY_RETRY = 1.0
_INFO_REQUEST = (ProtocolData("info", _OCTETS, b"\x02"),)
_BALANCE_REQUEST = (ProtocolData("balance", _OCTETS, b"\x00"),)
_LIMIT_REQUEST = (ProtocolData("limit", _OCTETS, b"\x00"),)


def _now() -> float:
    return time.time()


class Plugin:
    """The ILP ledger plugin (LPI v1) of a bilateral trustline with pluggable settlement.

    Construct it with the ILP Kit options mapping or snake_case keywords (see `options.py`);
    nothing opens a socket before `connect()`.

    Before `connect()` (and after `disconnect()`), as in the reference, the sync getters work
    (`get_info`, `get_account`, `get_peer_account`, `is_authorized`, `is_connected`), and so do
    `on`/`off` and `register_request_handler`. Reads of the plugin's own ledger work too:
    `transfer_log` (every method), `backend` (a module's `ctx.backend` and `ctx.transfer_log`)
    and, for a stateful plugin, `get_balance()`. A durable store opens on the first such use and
    stays open until `disconnect()`, which closes it even if the plugin never connected.
    Everything that needs the peer raises NotConnectedError until `connect()` is done:
    `send_transfer`, `fulfill_condition`, `reject_incoming_transfer`, `send_request`,
    `get_limit` and `get_peer_balance` (they ask the peer), and a stateless plugin's
    `get_balance` (it asks the peer too).

    Observability for operators: `add_observer(obs)` registers an object that may implement
    `round_trip(kind, seconds)` — called after every BTP request this plugin makes, `kind` being
    "prepare", "fulfill", "reject", "message", "info", "balance" or "limit" — and
    `link_changed(up)` — called when the authenticated socket to the peer comes or goes (the
    plugin's own `connect`/`disconnect` events fire only for the plugin-level calls, as in the
    reference). `in_flight_count()` is the number of prepared transfers this plugin is tracking.

    Subclasses (payment-channel modules) override `_create_hooks(services)`; tests may override
    `_create_link()` to inject a PeerLink.
    """

    #: Which options this class accepts besides the plugin's own, and whether it needs a store.
    _option_policy: ClassVar[OptionPolicy] = TRUSTLINE

    def __init__(self, options: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        raw = normalise_options(options, kwargs, self._option_policy)
        self._options = raw
        # A module's constructor gets the options as the caller gave them; with keywords
        # there is no such mapping, so it gets the merged camelCase options.
        self._options_as_given: Mapping[str, Any] = (
            options if options is not None and not kwargs else raw
        )
        self._settings: PluginSettings = parse_settings(raw, self._option_policy)
        self._events = EventEmitter(EVENT_NAMES)
        self._observers: list[Any] = []
        # The open store's Backend, TransferLog and TransferBook (bound by connect() for a
        # durable store); `_idle_backend`/`_idle_log` serve reads while they are unbound.
        self._backend: Backend | None = None
        self._owns_backend = False
        self._log: TransferLog | None = None
        self._book: TransferBook | None = None
        self._on_demand: OnDemandStore | None = None
        self._link: PeerLink | None = None
        self._validator: Validator | None = None
        self._scheduler = ExpiryScheduler(self._on_expired)
        self._request_handler: RequestHandlerFn | None = None
        self._lifecycle = Lifecycle()
        self._connect_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._bound_port: int | None = None
        self._prefix: str | None = self._settings.prefix
        self._info: dict[str, Any] | None = self._settings.info
        if (
            self._info is not None
            and self._prefix is None
            and isinstance(self._info.get("prefix"), str)
        ):
            self._prefix = self._info["prefix"]
        if self._settings.store is None or is_memory_url(self._settings.store):
            # A memory store is opened here so `transfer_log` works before connect() and keeps
            # its data across disconnect()/connect(). It packs settled transfers (a third of the
            # memory; they read back with their money fields only).
            from ilp_paychan.ledger import MemoryStore

            self._backend = Backend(MemoryStore(compact_settled=True))
            self._open_log()
            self._idle_backend = self._backend
        else:
            self._on_demand = OnDemandStore(self._settings.store)
            self._idle_backend = Backend(self._on_demand)
        self._idle_log = self._log_over(self._idle_backend)
        self._hooks = self._create_hooks(
            HookServices(
                settings=self._settings,
                options=raw,
                options_as_given=self._options_as_given,
                request=self._request,
                link_open=self._link_is_open,
                backend=lambda: self.backend,
                transfer_log=lambda: self.transfer_log,
            )
        )
        # again now that a module may supply the info (for the trustline parse_settings did)
        require_prefix_and_info(self._settings.server, self._prefix, self.get_info())
        self._notices = PeerNotices(
            self._request,
            transfer_log=lambda: self._log,
            account=self.get_account,
            peer_account=self.get_peer_account,
            active=self.is_connected,
            link_open=self._link_is_open,
            on_claim=self._hooks.handle_incoming_claim,
            events=self._events,
        )
        self._incoming = IncomingRequests(
            lifecycle=self._lifecycle,
            events=self._events,
            scheduler=self._scheduler,
            hooks=self._hooks,
            kick_notices=self._notices.kick,
            request_handler=lambda: self._request_handler,
            info=self.get_info,
            account=self.get_account,
            peer_account=self.get_peer_account,
            request_timeout=self._settings.request_timeout,
        )

    # ------------------------------------------------------------------ extension points

    def _create_hooks(self, services: HookServices) -> SettlementHooks:
        """The settlement hooks, built with what the plugin lends them; trustline mode has none."""
        return SettlementHooks()

    def _create_link(self) -> PeerLink:
        """The BTP link: a listener if `listener` is configured, else a client of `server`."""
        settings = self._settings
        if settings.listener is not None:
            from ilp_paychan.transport.server import BtpListener

            listener = settings.listener
            return BtpListener(
                self._bound_port or listener.port,
                listener.host,
                cert=listener.cert,
                key=listener.key,
                ca=listener.ca,
                client_ca=listener.client_ca,
                incoming_secret=settings.incoming_secret,
                auth_check=settings.auth_check,
                request_timeout=settings.request_timeout,
            )
        if settings.server is not None:
            from ilp_paychan.transport.client import BtpClient

            return BtpClient(
                settings.server,
                ca=settings.ca,
                cert=settings.client_cert,
                key=settings.client_key,
                request_timeout=settings.request_timeout,
            )
        raise InvalidFieldsError('invalid options: need "listener" or "server" to reach a peer')

    def _log_over(self, backend: Backend) -> TransferLog:
        settings = self._settings
        return backend.get_transfer_log(
            settings.store_key, settings.max_balance, settings.min_balance
        )

    def _open_log(self) -> None:
        assert self._backend is not None
        self._log = self._log_over(self._backend)
        self._book = TransferBook(self._log, prunes=self._settings.settled_retention is not None)

    # ------------------------------------------------------------------ metadata

    @property
    def transfer_log(self) -> TransferLog:
        """The plugin's own TransferLog (key `storeKey`), usable before connect() too: a
        durable store opens on its first call and stays open until disconnect()."""
        log_ = self._log
        return self._idle_log if log_ is None else log_

    @property
    def backend(self) -> Backend:
        """The ledger backend; before connect() its store opens on first use, as above."""
        backend = self._backend
        return self._idle_backend if backend is None else backend

    @property
    def options(self) -> Mapping[str, Any]:
        """The options as camelCase keys (keywords merged in), as the plugin read them."""
        return self._options

    @property
    def settings(self) -> PluginSettings:
        """The validated options."""
        return self._settings

    @property
    def listener_port(self) -> int | None:
        """The port the listener is bound to (useful with port 0); None without a listener."""
        port = getattr(self._link, "port", None)
        return port if isinstance(port, int) else None

    def is_connected(self) -> bool:
        """True between a finished connect() and the start of disconnect()."""
        return self._lifecycle.connected

    def get_info(self) -> dict[str, Any] | None:
        """A deep copy of the ledger info (None for a client before connect() fetched it)."""
        info = self._hooks.get_info()
        if info is None:
            info = self._info
        return None if info is None else json.loads(json.dumps(info))

    def get_account(self) -> str:
        """Own ILP address: the module's answer, else `<prefix>server` (stateful) or
        `<prefix>client` (stateless), as the reference names the two sides."""
        account = self._hooks.get_account()
        if account is not None:
            return account
        return (self._prefix or "") + ("server" if self._settings.stateful else "client")

    def get_peer_account(self) -> str:
        """The peer's ILP address, by the same rule as `get_account` from the other side."""
        account = self._hooks.get_peer_account()
        if account is not None:
            return account
        return (self._prefix or "") + ("client" if self._settings.stateful else "server")

    def is_authorized(self, token: str) -> bool:
        """Whether `token` equals the module's auth token, else the `token` option."""
        expected = self._hooks.get_auth_token()
        if expected is None:
            expected = self._settings.token
        return expected is not None and token == expected

    def in_flight_count(self) -> int:
        """Prepared transfers this plugin tracks (incoming and outgoing)."""
        return 0 if self._book is None else len(self._book.prepared)

    def add_observer(self, observer: Any) -> None:
        """Register an observer (see the class docstring for the methods it may have)."""
        self._observers.append(observer)

    def remove_observer(self, observer: Any) -> None:
        """Forget an observer; an unknown one is ignored."""
        if observer in self._observers:
            self._observers.remove(observer)

    # ------------------------------------------------------------------ events

    def on(self, name: str, callback: Callable[..., Any]) -> None:
        """Call `callback` (sync or async) on every `name` event."""
        self._events.on(name, callback)

    def off(self, name: str, callback: Callable[..., Any]) -> None:
        """Remove one registration of `callback` for `name`."""
        self._events.off(name, callback)

    # ------------------------------------------------------------------ connect / disconnect

    async def __aenter__(self) -> Plugin:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.disconnect()

    async def connect(self) -> None:
        """Open the store and the link, fetch info if needed, re-arm expiries; idempotent.

        Concurrent calls share one attempt; a failed attempt leaves the plugin disconnected so
        a later call tries again (in the reference every later call hung).
        """
        if self._lifecycle.connected:
            return
        task = self._connect_task
        if task is None:
            task = asyncio.get_running_loop().create_task(self._connect())
            self._connect_task = task
            self._lifecycle.connecting = True
            task.add_done_callback(self._connect_done)
        await asyncio.shield(task)

    def _connect_done(self, task: asyncio.Task[None]) -> None:
        if self._connect_task is task:
            self._connect_task = None
            self._lifecycle.connecting = False
        if not task.cancelled():
            task.exception()  # retrieved here; the awaiting caller re-raises it

    async def _connect(self) -> None:
        self._lifecycle.closing = False
        link: PeerLink | None = None
        opened_backend = False
        try:
            on_demand = self._on_demand
            if self._backend is None and on_demand is not None:
                opened_backend = not on_demand.is_open
                # Bound to the open store itself, so the transfer path skips the stand-in.
                self._backend = Backend(await on_demand.open())
                self._owns_backend = True
                self._open_log()
            link = self._create_link()
            link.set_request_handler(self._incoming.handle)
            link.on_state_change(self._on_link_state)
            self._link = link
            await link.start()
            if self._bound_port is None:
                # Port 0 picks a free port once; a later connect() binds the same one again so
                # that a client can redial it.
                self._bound_port = self.listener_port
            if self._info is None or self._prefix is None:
                await self._fetch_info()
            await self._hooks.connect()
            self._validator = Validator(
                self.get_account(), self.get_peer_account(), self._prefix or ""
            )
            await self._recover_prepared()
        except BaseException:
            self._link = None
            self._scheduler.stop()
            if link is not None:
                try:
                    await link.stop()
                except Exception:
                    log.exception("stopping the link after a failed connect() raised")
            if self._owns_backend:
                # A store that was open before this attempt (read before connect()) stays open.
                await self._close_backend(close_store=opened_backend)
            raise
        assert self._book is not None
        assert self._validator is not None
        self._incoming.bind(self._book, self._validator)
        self._lifecycle.connected = True
        self._lifecycle.ready.set()
        log.info("connected as %s (peer %s)", self.get_account(), self.get_peer_account())
        self._events.emit("connect")
        self._notices.kick()
        if self._settings.settled_retention is not None:
            self._spawn(
                prune_settled_periodically(lambda: self._book, self._settings.settled_retention)
            )
        if self._on_demand is not None:  # durable stores only: see sweep.py
            sweep = ExpirySweep(lambda: self._book, self._scheduler, self._expire)
            self._spawn(sweep.run(self._settings.expiry_sweep))

    async def _fetch_info(self) -> None:
        """A client without local info asks the peer, as the reference's client does."""
        response = await self._request(Message(0, _INFO_REQUEST), "info")
        entry = entries_by_name(response.protocol_data).get("info")
        info = decode_entry(entry) if entry is not None else {}
        if not isinstance(info, dict):
            raise NotAcceptedError("the peer's info answer is not an object")
        remote_prefix = info.get("prefix")
        if self._prefix is not None and remote_prefix != self._prefix:
            raise NotAcceptedError(
                "Remote prefix does not match configured prefix: the peer's info says "
                f"{remote_prefix!r}, this plugin is configured with {self._prefix!r}"
            )
        if self._prefix is None:
            if not isinstance(remote_prefix, str):
                raise NotAcceptedError("the peer's info has no prefix")
            try:  # it becomes part of every account and record: check what the peer sent
                self._prefix = check_prefix(remote_prefix, "info.prefix from the peer")
            except InvalidFieldsError as exc:
                raise NotAcceptedError(str(exc)) from None
        self._info = info

    async def _recover_prepared(self) -> None:
        """Reload stored prepared transfers: expire those past due, arm the rest."""
        assert self._book is not None
        book = self._book
        now = _now()
        overdue: list[str] = []
        for stored in await book.log.list_prepared():
            try:
                entry = Entry.from_stored(stored)
            except (KeyError, ValueError, TypeError):
                log.error("stored transfer %r cannot be read; left as is", stored.get("transfer"))
                continue
            book.remember(entry)
            if entry.expires_at <= now:
                overdue.append(entry.id)
            else:
                self._scheduler.arm(entry.id, entry.expires_at)
        if overdue:
            log.info("cancelling %d transfer(s) that expired while stopped", len(overdue))
            await self._expire(overdue)

    async def disconnect(self) -> None:
        """Stop taking new work, let in-flight requests finish (bounded), close link and store."""
        task = self._connect_task
        if task is not None:
            # A failed connect() raises to its own caller; here it just means "not connected".
            with contextlib.suppress(Exception):
                await asyncio.shield(task)
        lifecycle = self._lifecycle
        if not lifecycle.connected:
            # Never connected (or the attempt failed), or already disconnected: only a store
            # opened by a read is left to close.
            if self._on_demand is not None:
                await self._on_demand.close()
            return
        lifecycle.connected = False
        lifecycle.closing = True
        lifecycle.ready.clear()
        timeout = self._settings.shutdown_timeout
        incoming = self._incoming
        if incoming.running:
            try:
                await asyncio.wait_for(incoming.idle.wait(), timeout)
            except TimeoutError:
                log.warning(
                    "disconnect: %d request(s) still running after %gs", incoming.running, timeout
                )
        self._notices.stop()
        for pending in list(self._tasks):
            pending.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        self._scheduler.stop()
        hook_error: BaseException | None = None
        try:
            await self._hooks.disconnect()
        except Exception as error:
            hook_error = error
        link, self._link = self._link, None
        if link is not None:
            await link.stop()
        if self._book is not None:
            self._book.prepared.clear()
        if self._owns_backend:
            await self._close_backend()
        log.info("disconnected")
        self._events.emit("disconnect")
        if hook_error is not None:
            raise hook_error

    async def _close_backend(self, *, close_store: bool = True) -> None:
        """Unbind the durable store's open objects and (unless told not to) close the store."""
        self._backend = None
        self._log = None
        self._book = None
        self._owns_backend = False
        if close_store and self._on_demand is not None:
            await self._on_demand.close()

    def _on_link_state(self, up: bool) -> None:
        log.info("link to peer %s", "up" if up else "down")
        for observer in self._observers:
            callback = getattr(observer, "link_changed", None)
            if callback is not None:
                try:
                    callback(up)
                except Exception:
                    log.exception("observer link_changed raised")
        if up and self._lifecycle.connected:
            self._notices.kick()

    def _link_is_open(self) -> bool:
        link = self._link
        return link is not None and link.is_open()

    def _require_connected(self, method: str, why: str = "") -> None:
        """Raise the reference's NotConnectedError text, with `why` the call needs the peer."""
        if not self._lifecycle.connected:
            raise NotConnectedError(f"Must be connected before {method} can be called.{why}")

    # ------------------------------------------------------------------ outgoing requests

    async def _request(
        self,
        packet: Packet,
        kind: str,
        timeout: float | None = None,  # noqa: ASYNC109 - the link's own deadline
    ) -> Response:
        link = self._link
        if link is None:
            raise NotConnectedError("the plugin is not connected")
        if timeout is None:
            timeout = self._settings.request_timeout
        if not self._observers:
            return await link.request(packet, timeout)
        started = time.perf_counter()
        try:
            return await link.request(packet, timeout)
        finally:
            elapsed = time.perf_counter() - started
            for observer in self._observers:
                callback = getattr(observer, "round_trip", None)
                if callback is not None:
                    try:
                        callback(kind, elapsed)
                    except Exception:
                        log.exception("observer round_trip raised")

    def _spawn(self, coroutine: Awaitable[Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    # ------------------------------------------------------------------ balances

    async def get_balance(self) -> str:
        """IF − OF; a stateless plugin asks the peer and negates its answer.

        A stateful plugin answers from its own store, also before connect() (the reference
        refuses that; the answer needs no peer). A stateless one needs the connection.
        """
        if self._settings.stateful:
            return str(int(await self.transfer_log.get_balance()))
        self._require_connected(
            "get_balance", " A plugin without a store asks its peer for the balance."
        )
        return str(-await self._peer_balance())

    async def get_peer_balance(self) -> str:
        """The peer's balance with us, negated (as the reference); "0", never "-0"."""
        self._require_connected("get_peer_balance", " It asks the peer.")
        return str(-await self._peer_balance())

    async def _peer_balance(self) -> int:
        response = await self._request(Message(0, _BALANCE_REQUEST), "balance")
        entry = entries_by_name(response.protocol_data).get("balance")
        if entry is None or not entry.data:
            raise NotAcceptedError("Could not get peer balance.")
        try:
            return decode_int64(entry.data)
        except CodecError as error:
            raise NotAcceptedError(f"Could not get peer balance: {error}") from None

    async def get_limit(self) -> str:
        """The peer's maximum, negated: how far our balance may fall ("-Infinity" unlimited)."""
        self._require_connected("get_limit", " It asks the peer for its limit.")
        response = await self._request(Message(0, _LIMIT_REQUEST), "limit")
        entry = entries_by_name(response.protocol_data).get("limit")
        if entry is None:
            raise NotAcceptedError("Failed to get limit of peer.")
        value = decode_entry(entry)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        text = str(value)
        if text == "Infinity":
            return "-Infinity"
        if text == "-Infinity":
            return "Infinity"
        try:
            return str(-int(text))
        except ValueError:
            raise NotAcceptedError(f"invalid number: {text!r}") from None

    # ------------------------------------------------------------------ sending transfers

    async def send_transfer(self, transfer: Mapping[str, Any]) -> None:
        """Prepare an outgoing transfer and send it; returns once the peer acknowledged it.

        Raises:
            InvalidFieldsError: a field is invalid, or `expiresAt` is not in the future.
            NotAcceptedError: the minimum balance would be passed.
            DuplicateIdError: the id was used with other contents.
            PeerError: the peer refused it; the reservation is released.
            PeerTimeoutError / UnreachableError: no answer; the transfer stays prepared and is
                cancelled at its expiry unless the peer fulfils it first.
        """
        self._require_connected("send_transfer")
        assert self._validator is not None
        assert self._book is not None
        checked = self._validator.outgoing_transfer(transfer)
        expires_at = checked.expires_at.timestamp()
        if expires_at <= _now():
            raise InvalidFieldsError(
                f"invalid expiresAt: {checked.record['expiresAt']} is not in the future"
            )
        entry = Entry(
            checked.id, checked.record, False, checked.amount, checked.condition, expires_at
        )
        try:
            outcome = await self._book.prepare(entry)
        except StoreUnavailableError:
            self._scheduler.arm(checked.id, expires_at)  # it may be stored all the same
            raise
        if outcome is PrepareOutcome.REPEAT_FULFILLED:
            raise AlreadyRolledBackError(
                f"transfer {checked.id} was already fulfilled; not sent again"
            )
        if outcome is PrepareOutcome.REPEAT_CANCELLED:
            raise AlreadyRolledBackError(f"transfer {checked.id} was already cancelled")
        if outcome is PrepareOutcome.NEW:
            self._scheduler.arm(checked.id, expires_at)
        packet = Prepare(
            0,
            checked.id,
            checked.amount,
            checked.condition,
            checked.expires_at,
            to_protocol_data(checked.ilp, checked.custom),
        )
        try:
            await self._request(packet, "prepare")
        except (PeerError, UnreachableError, NotConnectedError) as error:
            # Refused, or never sent: the peer cannot hold it, so the reservation goes. A timeout
            # (PeerTimeoutError) is different: the peer may have accepted it; expiry decides.
            if outcome is PrepareOutcome.NEW and await self._book.cancel_refused(checked.id):
                self._scheduler.disarm(checked.id)
                log.info("transfer %s not accepted (%s); reservation released", checked.id, error)
            raise
        self._events.emit("outgoing_prepare", checked.record)

    # ------------------------------------------------------------------ settling incoming transfers

    async def fulfill_condition(
        self, transfer_id: str, fulfillment: str, ilp: str | None = None
    ) -> None:
        """Fulfil an incoming transfer; returns once the sender acknowledged it (paid, final).

        The fulfilment is committed (with a durable "tell the peer" notice carrying `ilp`)
        before anything is sent, and `incoming_fulfill` fires. Then the Fulfill goes out and
        this waits for the sender's answer, at most `requestTimeout` seconds from the call:
        while the link is down it waits for it, and it sends again if the link drops. The
        sender decides (a fulfilment that reaches it after the expiry does not count):

        - it acknowledges: this returns (and `incoming_fulfill_confirmed` fires);
        - it had already cancelled the transfer: the fulfilment is reverted here (the transfer
          ends cancelled, the balance drops back, `incoming_fulfill_reverted` fires) and this
          raises AlreadyRolledBackError;
        - it refuses otherwise: its PeerError is raised (nothing reverted);
        - no answer in time: FulfillmentPendingError. The Fulfill is re-sent in the background
          until the sender answers (after the expiry too, after reconnects and restarts), and
          one of the two events reports the outcome.

        A repeated call with the same fulfillment raises no second `incoming_fulfill`: it
        returns at once if the sender acknowledged already, else it waits as above.

        Raises:
            InvalidFieldsError, TransferNotFoundError, AlreadyRolledBackError (cancelled,
            expired, or refused by the sender as cancelled), NotAcceptedError (outgoing
            transfer, or the fulfillment does not match), PeerError, FulfillmentPendingError.
        """
        self._require_connected("fulfill_condition")
        assert self._book is not None
        tid = canonical_id(transfer_id)
        preimage = parse_hash32(fulfillment, "fulfillment")
        ilp_bytes = parse_base64(ilp) if ilp not in (None, "") else None
        notices = self._notices
        deadline = asyncio.get_running_loop().time() + self._settings.request_timeout
        with notices.holding(tid):  # this call delivers it, not the background task
            try:
                entry, changed = await self._book.fulfill_incoming(tid, preimage, _now(), ilp_bytes)
            except AlreadyRolledBackError:
                late = self._book.prepared.get(tid)
                if late is not None:
                    # Past its expiry by our clock, not cancelled yet: cancel it now, as
                    # refusing says, rather than when the timer gets to it.
                    self._scheduler.arm(tid, late.expires_at)
                raise
            if changed:
                self._scheduler.disarm(tid)
                text = entry.fulfillment or fulfillment
                ilp_text = b64url(ilp_bytes) if ilp_bytes else None
                self._events.emit("incoming_fulfill", entry.record, text, ilp_text)
            else:
                pending = await notices.stored(tid)
                if pending is None:
                    return  # acknowledged before
                entry = pending
            answer = await notices.deliver_until(entry, deadline, preimage)
        outcome = answer.outcome
        if outcome is Outcome.ACKNOWLEDGED:
            return
        if outcome is Outcome.REVERTED:
            raise AlreadyRolledBackError(
                f"transfer {tid}: the sender had already cancelled it ({answer.error}); "
                "the fulfillment is reverted"
            )
        if answer.error is not None:
            raise answer.error
        notices.kick()
        raise FulfillmentPendingError(tid)

    async def reject_incoming_transfer(
        self, transfer_id: str, reason: Mapping[str, Any] | None = None
    ) -> None:
        """Reject an incoming transfer with an ILP error built from `reason`.

        The reason is validated and encoded before any state changes; an unusable one raises
        InvalidFieldsError and leaves the transfer prepared. The encoded reason is
        stored with the peer notice; with no peer connected this returns at once and the Reject
        goes out (with that reason) when a peer is back, also after a restart.
        """
        self._require_connected("reject_incoming_transfer")
        assert self._book is not None
        tid = canonical_id(transfer_id)
        error, normal = rejection_error(reason, self.get_account())
        encoded = encode_ilp(error)
        entry, changed = await self._book.reject_incoming(tid, encoded)
        if not changed:
            return
        self._scheduler.disarm(tid)
        self._events.emit("incoming_reject", entry.record, normal)
        await self._notices.deliver(entry)

    # ------------------------------------------------------------------ expiry

    def _on_expired(self, transfer_ids: list[str]) -> None:
        lifecycle = self._lifecycle
        # Also while connect() is still running: `_recover_prepared` arms timers that may fire
        # before it is done (a fired timer is gone, so dropping it left the transfer prepared).
        if lifecycle.connected or lifecycle.connecting:
            self._spawn(self._expire(transfer_ids))

    async def _expire(self, transfer_ids: list[str], *, adopted: Container[str] = ()) -> None:
        """Cancel what is still prepared; `adopted`: ids the sweep took up from the store."""
        book = self._book
        if book is None:
            return
        account = self.get_account()
        tell_peer = False
        for tid in transfer_ids:
            try:
                entry, changed = await book.expire(tid)
            except StoreUnavailableError as error:
                log.warning("expiring %s failed (%s); again in %gs", tid, error, EXPIRY_RETRY)
                self._scheduler.arm(tid, _now() + EXPIRY_RETRY)
                continue
            except Exception:
                log.exception("expiring %s failed", tid)
                continue
            if entry is None or not changed:
                if (
                    entry is not None
                    and entry.is_incoming
                    and entry.state == FULFILLED
                    and tid not in adopted
                ):
                    # Fulfilled in the store though the call that did it failed (the store
                    # dropped during its commit): its Fulfill notice still has to go out. One the
                    # sweep took up was fulfilled by another process, which delivers it.
                    tell_peer = True
                continue
            log.info("transfer %s expired", tid)
            reason = outgoing_reason(expiry_error(account))
            if entry.is_incoming:
                tell_peer = True
                self._events.emit("incoming_cancel", entry.record, reason)
            else:
                self._events.emit("outgoing_cancel", entry.record, reason)
        if tell_peer:
            self._notices.kick()

    # ------------------------------------------------------------------ messages

    def register_request_handler(self, handler: RequestHandlerFn) -> None:
        """Set the one handler answering the peer's messages (works before connect() too)."""
        if not callable(handler):
            raise InvalidFieldsError("requestHandler must be a function")
        if self._request_handler is not None:
            raise RequestHandlerAlreadyRegisteredError("requestHandler is already registered")
        self._request_handler = handler

    def deregister_request_handler(self) -> None:
        """Remove the handler; the peer's messages are then refused."""
        self._request_handler = None

    async def send_request(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """Send a message to the peer's request handler; returns its response message.

        The response has `id` (the request's `id`, or a fresh UUID when it had none), `to`, `from`,
        `ledger` and `ilp`/`custom` when present.
        """
        self._require_connected("send_request")
        assert self._validator is not None
        checked = self._validator.outgoing_message(message)
        self._events.emit("outgoing_request", message)
        pd = to_protocol_data(checked.ilp, checked.custom)
        response = await self._request(Message(0, pd), "message")
        result: dict[str, Any] = {
            "id": message.get("id") or str(uuid.uuid4()),
            "to": self.get_account(),
            "from": self.get_peer_account(),
            "ledger": self._prefix,
        }
        result.update(lpi_fields(entries_by_name(response.protocol_data)))
        self._events.emit("incoming_response", result)
        return result
