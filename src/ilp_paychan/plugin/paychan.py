"""`make_payment_channel_plugin(module)`: a Plugin class whose settlement is a user's module.

The class subclasses the trustline `Plugin` and changes one thing: `_create_hooks` returns a
`ModuleHooks` around the module, with the module's `PluginContext` made from the `HookServices`
the plugin lends (its rpc, store and options) and the plugin itself as `ctx.plugin`. Everything
else (transfer state machine, store, link) is the plugin's; the module only sees `ctx`.
"""

from __future__ import annotations

from types import SimpleNamespace

from ilp_paychan.codec.btp import Message, Response
from ilp_paychan.errors import InvalidFieldsError, NotConnectedError
from ilp_paychan.plugin.hooks import SettlementHooks
from ilp_paychan.plugin.module_context import ModuleBackend, own_transfer_log
from ilp_paychan.plugin.module_hooks import (
    DEFAULT_HOOK_TIMEOUT,
    DEFAULT_LIFECYCLE_TIMEOUT,
    ModuleHooks,
    ModuleSpec,
    PluginContext,
    hook_timeout_option,
    load_module,
)
from ilp_paychan.plugin.options import module_policy
from ilp_paychan.plugin.plugin import Plugin
from ilp_paychan.plugin.rpc import CustomRpc
from ilp_paychan.plugin.services import HookServices

__all__ = ["PluginContext", "make_payment_channel_plugin"]


def make_payment_channel_plugin(module: object) -> type[Plugin]:
    """A Plugin class (named `Plugin` + capitalised `plugin_name`) settling through `module`.

    `module` is any object or mapping with the module hooks (`plugin_name`, `constructor`,
    `connect`, `handle_incoming_prepare`, ...; see `module_hooks.load_module`). Options of the
    class besides the plugin's own: `hookTimeout` (seconds for transfer-path hooks and rpc
    methods, default 2 or half of `requestTimeout` if that is less; must be below
    `requestTimeout`) and
    `lifecycleHookTimeout` (seconds for `connect`/`disconnect`, default 30). Other keys go to
    the module's constructor unchecked, except near misses of the plugin's own names (refused
    as typos); a module that lists the options it reads in `option_names` gets every other
    unknown key refused instead.

    Raises:
        InvalidFieldsError: the module lacks `plugin_name` or required hooks (all named).
    """
    spec = load_module(module)

    def _create_hooks(self: Plugin, services: HookServices) -> SettlementHooks:
        return _module_hooks(self, spec, services)

    namespace = {
        "_create_hooks": _create_hooks,
        "_option_policy": module_policy(spec.option_names),
        "settlement_module": module,
        "__doc__": f"Plugin settling through the payment-channel module {spec.plugin_name!r}.",
        "__module__": __name__,
    }
    cls = type(spec.class_name, (Plugin,), namespace)
    cls.__qualname__ = spec.class_name
    return cls


def _module_hooks(plugin: Plugin, spec: ModuleSpec, services: HookServices) -> ModuleHooks:
    """Build `ctx` and the hooks, then run the module's constructor (inside the plugin's)."""
    options = services.options
    hook_timeout = hook_timeout_option(options, "hookTimeout", DEFAULT_HOOK_TIMEOUT)
    lifecycle_timeout = hook_timeout_option(
        options, "lifecycleHookTimeout", DEFAULT_LIFECYCLE_TIMEOUT
    )
    request_timeout = services.settings.request_timeout
    if "hookTimeout" not in options:
        hook_timeout = min(hook_timeout, request_timeout / 2)
    elif hook_timeout >= request_timeout:
        raise InvalidFieldsError(
            f"hookTimeout ({hook_timeout:g} s) must be below requestTimeout "
            f"({request_timeout:g} s): the peer would give up before a slow hook is cut off"
        )

    async def send(message: Message) -> Response:
        # Fail at once while no peer is connected (a listener before its client dials in),
        # rather than waiting out the request timeout.
        if not services.link_open():
            raise NotConnectedError("no peer is connected; the rpc call was not sent")
        return await services.request(message, "message")

    ctx = PluginContext(
        state=SimpleNamespace(),
        rpc=CustomRpc(send),
        backend=ModuleBackend(services.backend),
        transfer_log=own_transfer_log(services.transfer_log, services.settings.store_key),
        plugin=plugin,
    )
    hooks = ModuleHooks(spec, ctx, hook_timeout=hook_timeout, lifecycle_timeout=lifecycle_timeout)
    hooks.construct(services.options_as_given)
    return hooks
