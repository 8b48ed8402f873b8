"""ModuleHooks: a user's payment-channel module seen through the plugin's `SettlementHooks`.

What this is for: the plugin calls only `SettlementHooks`; this adapter calls the module's hooks
(sync or async, as docs/api.md allows) with the `PluginContext`, and keeps a
module from hurting the transfer flow. Rules:
- Every async hook runs under a time limit. A slow or failing hook becomes a `NotAcceptedError`
  with a message saying which hook and why; the plugin, which knows the transfer, logs it with the
  transfer id and then: `handle_incoming_prepare` refuses the transfer, `create_outgoing_claim`
  gives no claim, `handle_incoming_claim` is only logged. Nothing a module raises reaches the peer
  except the refusal of a prepare (the module's message and, for a `PluginError`, its code).
- `connect`/`disconnect` run once per connection (a second `connect()` does not call them again).
- It never touches the store or the link itself: the module does, through `ctx`.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from ilp_paychan.codec.btp import Message, Response
from ilp_paychan.errors import InvalidFieldsError, NotAcceptedError, PluginError
from ilp_paychan.plugin.hooks import SettlementHooks
from ilp_paychan.plugin.options import seconds_option
from ilp_paychan.plugin.rpc import CustomRpc

#: Hooks a module must have: without them the plugin cannot name itself or settle.
REQUIRED_HOOKS = (
    "get_info",
    "get_account",
    "get_peer_account",
    "create_outgoing_claim",
    "handle_incoming_claim",
)
#: Hooks a module may leave out; the trustline behaviour applies then.
OPTIONAL_HOOKS = (
    "constructor",
    "get_auth_token",
    "connect",
    "disconnect",
    "handle_incoming_prepare",
)

DEFAULT_HOOK_TIMEOUT = 2.0
"""Seconds for hooks on the transfer path: well below the peer's 5 s request timeout."""
DEFAULT_LIFECYCLE_TIMEOUT = 30.0
"""Seconds for `connect`/`disconnect`, which may wait on the settlement ledger."""

_CAMEL = {
    "pluginName": "plugin_name",
    "getInfo": "get_info",
    "getAccount": "get_account",
    "getPeerAccount": "get_peer_account",
    "getAuthToken": "get_auth_token",
    "handleIncomingPrepare": "handle_incoming_prepare",
    "createOutgoingClaim": "create_outgoing_claim",
    "handleIncomingClaim": "handle_incoming_claim",
}


@dataclass(eq=False, slots=True)
class PluginContext:
    """`ctx`, handed to every hook: the module's handle on its plugin (see docs/api.md)."""

    state: SimpleNamespace
    rpc: CustomRpc
    backend: Any
    transfer_log: Any
    plugin: Any
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("ilp_paychan.module"))


@dataclass(frozen=True, slots=True)
class ModuleSpec:
    """A validated module: its name and its hooks as plain callables."""

    plugin_name: str
    hooks: Mapping[str, Callable[..., Any]]
    #: The option names the module's constructor reads, if it declares them (`option_names`);
    #: then any other unknown key is refused. None: undeclared, unknown keys reach the module.
    option_names: frozenset[str] | None = None

    @property
    def class_name(self) -> str:
        """The name of the plugin class made for this module (see `plugin_class_name`)."""
        return plugin_class_name(self.plugin_name)


def plugin_class_name(plugin_name: str) -> str:
    """`Plugin` + each `-`-separated word capitalised, as the reference (`xrp-paychan` →
    `PluginXrpPaychan`)."""
    return "Plugin" + "".join(w[:1].upper() + w[1:].lower() for w in plugin_name.split("-"))


def _lookup(module: object, name: str) -> Any:
    if isinstance(module, Mapping):
        return module.get(name)
    return getattr(module, name, None)


def load_module(module: object) -> ModuleSpec:
    """Check a module (any object, or a mapping) and collect its hooks.

    Raises:
        InvalidFieldsError: `plugin_name` is missing or not a non-empty string, a required hook
            is missing (all of them are named), or a hook is not callable.
    """
    plugin_name = _lookup(module, "plugin_name")
    problems: list[str] = []
    if not isinstance(plugin_name, str) or not plugin_name.strip("-"):
        problems.append(f"plugin_name must be a non-empty string, got {plugin_name!r}")
    missing = [name for name in REQUIRED_HOOKS if _lookup(module, name) is None]
    if missing:
        hint = ""
        camel = [c for c, snake in _CAMEL.items() if snake in missing and _lookup(module, c)]
        if camel:
            hint = f" (found JavaScript-style names {', '.join(camel)}: use snake_case)"
        problems.append("missing required hooks: " + ", ".join(missing) + hint)
    hooks: dict[str, Callable[..., Any]] = {}
    for name in (*REQUIRED_HOOKS, *OPTIONAL_HOOKS):
        hook = _lookup(module, name)
        if hook is None:
            continue
        if not callable(hook):
            problems.append(f"hook {name} must be callable, got {type(hook).__name__}")
            continue
        hooks[name] = hook
    option_names = _option_names(_lookup(module, "option_names"), problems)
    if problems:
        raise InvalidFieldsError("invalid payment channel module: " + "; ".join(problems))
    assert isinstance(plugin_name, str)
    return ModuleSpec(plugin_name, hooks, option_names)


def _option_names(value: Any, problems: list[str]) -> frozenset[str] | None:
    """The module's optional `option_names`: a collection of strings (not one string)."""
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        problems.append(f"option_names must be a collection of strings, got {value!r}")
        return None
    names = list(value)
    if not all(isinstance(name, str) for name in names):
        problems.append(f"option_names must be a collection of strings, got {names!r}")
        return None
    return frozenset(names)


def hook_timeout_option(options: Mapping[str, Any], key: str, default: float) -> float:
    """A hook time limit from the (normalised, camelCase) options; `default` when absent.

    The plugin's rule for every time limit applies: finite seconds above 0, at most a day.
    """
    return seconds_option(options, key, default)


class HookOverrun(Exception):
    """A hook ran past its time limit (and was cancelled); not a TimeoutError of its own."""


async def _within(limit: float, awaitable: Awaitable[Any]) -> Any:
    """Await under a time limit; HookOverrun only when *this* limit expired."""
    scope = asyncio.timeout(limit)
    try:
        async with scope:
            return await awaitable
    except TimeoutError:
        if scope.expired():
            raise HookOverrun from None
        raise


class ModuleHooks(SettlementHooks):
    """The settlement hooks of a plugin made by `make_payment_channel_plugin(module)`."""

    def __init__(
        self,
        spec: ModuleSpec,
        ctx: PluginContext,
        *,
        hook_timeout: float = DEFAULT_HOOK_TIMEOUT,
        lifecycle_timeout: float = DEFAULT_LIFECYCLE_TIMEOUT,
    ) -> None:
        self.spec = spec
        self.ctx = ctx
        self.hook_timeout = hook_timeout
        self.lifecycle_timeout = lifecycle_timeout
        self._hooks = spec.hooks
        self._connected = False
        self._log = logging.getLogger(f"ilp_paychan.module.{spec.plugin_name}")
        ctx.log = self._log

    # --- synchronous hooks ------------------------------------------------------------------

    def _call_sync(self, name: str, *args: Any) -> Any:
        result = self._hooks[name](self.ctx, *args)
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise InvalidFieldsError(
                f"module hook {name} must be synchronous, it returned an awaitable"
            )
        return result

    def construct(self, options: Mapping[str, Any]) -> None:
        """Run the module's `constructor(ctx, opts)` with the options as given."""
        if "constructor" in self._hooks:
            self._call_sync("constructor", options)

    def get_info(self) -> dict[str, Any] | None:
        """A deep copy of the module's info (callers may mutate it); None: use the options."""
        info = self._call_sync("get_info")
        if info is None:
            return None
        if not isinstance(info, Mapping):
            raise InvalidFieldsError(
                f"module get_info must return a mapping, got {type(info).__name__}"
            )
        return copy.deepcopy(dict(info))

    def get_account(self) -> str | None:
        return self._text_hook("get_account")

    def get_peer_account(self) -> str | None:
        return self._text_hook("get_peer_account")

    def get_auth_token(self) -> str | None:
        if "get_auth_token" not in self._hooks:
            return None
        return self._text_hook("get_auth_token")

    def _text_hook(self, name: str) -> str | None:
        value = self._call_sync(name)
        if value is not None and not isinstance(value, str):
            raise InvalidFieldsError(
                f"module {name} must return a string, got {type(value).__name__}"
            )
        return value

    # --- asynchronous hooks -----------------------------------------------------------------

    async def _call_async(self, name: str, limit: float, *args: Any) -> Any:
        result = self._hooks[name](self.ctx, *args)
        if inspect.isawaitable(result):
            result = await _within(limit, result)
        return result

    async def connect(self) -> None:
        """The module's `connect` once per connection; its error fails `connect()` as is."""
        if self._connected:
            return
        if "connect" in self._hooks:
            try:
                await self._call_async("connect", self.lifecycle_timeout)
            except HookOverrun:
                raise NotAcceptedError(
                    f"settlement module {self.spec.plugin_name} did not connect within "
                    f"{self.lifecycle_timeout:g} s"
                ) from None
        self._connected = True

    async def disconnect(self) -> None:
        """The module's `disconnect` once per connection.

        Its error (or time-out) is raised, as the reference does; the plugin still closes the
        link and the store before raising it, so a failed cash-in never leaves it half open.
        """
        if not self._connected:
            return
        self._connected = False
        if "disconnect" not in self._hooks:
            return
        try:
            await self._call_async("disconnect", self.lifecycle_timeout)
        except HookOverrun:
            raise NotAcceptedError(
                f"settlement module {self.spec.plugin_name} did not disconnect within "
                f"{self.lifecycle_timeout:g} s"
            ) from None

    async def handle_incoming_prepare(self, transfer: dict[str, Any]) -> None:
        """Raises NotAcceptedError (or the module's PluginError) when the module refuses."""
        if "handle_incoming_prepare" not in self._hooks:
            return
        transfer_id = transfer.get("id")
        try:
            await self._call_async("handle_incoming_prepare", self.hook_timeout, dict(transfer))
        except HookOverrun:
            self._log.warning(
                "transfer %s refused: handle_incoming_prepare took longer than %g s",
                transfer_id,
                self.hook_timeout,
            )
            raise NotAcceptedError(
                f"{transfer_id} refused: settlement module did not decide within "
                f"{self.hook_timeout:g} s"
            ) from None
        except PluginError:
            raise
        except Exception as exc:
            raise NotAcceptedError(str(exc) or type(exc).__name__) from exc

    async def create_outgoing_claim(self, outgoing_fulfilled: str) -> Any:
        """The module's claim for the outgoing-fulfilled total.

        Raises NotAcceptedError when the hook fails, overruns the time limit or returns something
        that cannot travel (not JSON, text or bytes); the plugin then logs that with the transfer
        id and acknowledges the Fulfill without a claim.
        """
        try:
            claim = await self._call_async(
                "create_outgoing_claim", self.hook_timeout, outgoing_fulfilled
            )
        except HookOverrun:
            raise NotAcceptedError(
                f"create_outgoing_claim({outgoing_fulfilled}) took longer than "
                f"{self.hook_timeout:g} s; no claim sent"
            ) from None
        except PluginError:
            raise
        except Exception as exc:
            raise NotAcceptedError(
                f"create_outgoing_claim({outgoing_fulfilled}) failed: {exc!r}; no claim sent"
            ) from exc
        if claim is None or isinstance(claim, str | bytes):
            return claim
        try:
            json.dumps(claim)
        except (TypeError, ValueError):
            raise NotAcceptedError(
                f"create_outgoing_claim returned a {type(claim).__name__} that is not JSON; "
                "no claim sent"
            ) from None
        return claim

    async def handle_incoming_claim(self, claim: Any) -> None:
        """Hand the peer's claim to the module.

        Raises NotAcceptedError when the hook fails or overruns the time limit; the plugin logs
        it with the transfer id and carries on (the transfer is fulfilled either way).
        """
        try:
            await self._call_async("handle_incoming_claim", self.hook_timeout, claim)
        except HookOverrun:
            raise NotAcceptedError(
                f"handle_incoming_claim took longer than {self.hook_timeout:g} s; claim dropped"
            ) from None
        except PluginError:
            raise
        except Exception as exc:
            raise NotAcceptedError(f"handle_incoming_claim failed: {exc!r}") from exc

    async def handle_side_protocols(self, message: Message) -> Response | None:
        """Module methods registered with `ctx.rpc.add_method` answer the peer's Message.

        A method that fails or overruns the hook time limit makes the answer a BTP Error
        (NotAcceptedError with the method's message), never an internal exception name.
        """
        try:
            response: Response = await _within(self.hook_timeout, self.ctx.rpc.handle(message))
            return response
        except HookOverrun:
            names = ", ".join(pd.protocol_name for pd in message.protocol_data)
            self._log.error("rpc %s took longer than %g s", names, self.hook_timeout)
            raise NotAcceptedError(
                f"rpc {names} did not answer within {self.hook_timeout:g} s"
            ) from None
        except PluginError:
            raise
        except Exception as exc:
            names = ", ".join(pd.protocol_name for pd in message.protocol_data)
            self._log.exception("rpc %s failed", names)
            raise NotAcceptedError(str(exc) or type(exc).__name__) from exc
