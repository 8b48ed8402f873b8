"""SPSP (RFC 9): how a payer learns a STREAM receiver's address and shared secret over HTTP.

Two halves, kept apart so the rules can be tested without sockets:

- pure: `endpoint_url` (a payment pointer, RFC 26, or an http(s) URL to the endpoint's URL),
  `parse_response` (a decoded JSON body to a checked `SpspResponse`, every fault a
  `SpspResponseError` naming the field) and `response_document` (what a server answers);
- I/O over aiohttp: `query` (the client: one GET with ``Accept: application/spsp4+json``) and
  `SpspServer` (answers each GET with a fresh address and secret from a STREAM server).

aiohttp is imported only by the I/O half, when it is used, so the pure half costs nothing to
import. RFC 9 says SPSP runs over HTTPS; `SpspServer` serves TLS when given an `ssl.SSLContext`
and plain HTTP otherwise (for loopback, or behind a TLS-terminating proxy). The client refuses
plain ``http://`` to a host that is not loopback unless asked to allow it: whoever can rewrite
the answer can send the payment elsewhere.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import urljoin, urlsplit

from ..codec.address import is_valid_address
from ..describe import clip, json_kind

if TYPE_CHECKING:
    import ssl

    from aiohttp import ClientSession, web

__all__ = [
    "ACCEPT",
    "SPSP_CONTENT_TYPE",
    "WELL_KNOWN_PATH",
    "AddressSource",
    "InvalidPointerError",
    "SpspAssetInfo",
    "SpspBalance",
    "SpspError",
    "SpspHttpError",
    "SpspResponse",
    "SpspResponseError",
    "SpspServer",
    "SpspTimeoutError",
    "SpspUnreachableError",
    "check_path",
    "endpoint_url",
    "is_loopback_host",
    "parse_response",
    "query",
    "response_document",
]

SPSP_CONTENT_TYPE: Final = "application/spsp4+json"
#: What the client asks for (RFC 9 "Query"): STREAM-era SPSP first, the generic type second.
ACCEPT: Final = "application/spsp4+json, application/spsp+json"
#: Where a pointer without a path resolves to (RFC 26 "Receiver Endpoint Resolution").
WELL_KNOWN_PATH: Final = "/.well-known/pay"
SHARED_SECRET_LENGTH: Final = 32
#: A larger body is not an SPSP answer; reading stops there.
MAX_BODY: Final = 64 * 1024
#: Same-origin redirects followed before giving up.
MAX_REDIRECTS: Final = 5
_JSON_TYPES: Final = frozenset({SPSP_CONTENT_TYPE, "application/spsp+json", "application/json"})

# RFC 3986: a DNS name (or IPv4 literal) for the host; path segments of pchar.
_HOST_RE: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._~-]*[A-Za-z0-9_~-])?")
_PATH_RE: Final = re.compile(r"(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})*)*")
_INTEGER_RE: Final = re.compile(r"-?[0-9]+")
_BASE64_RE: Final = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")


class SpspError(Exception):
    """Base of every SPSP failure: the payment could not be set up, nothing was paid."""


class InvalidPointerError(SpspError, ValueError):
    """Neither a payment pointer (RFC 26) nor an http(s) URL this client will query.

    ``field`` is ``"pointer"`` or ``"url"``, as the caller gave it.
    """

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class SpspResponseError(SpspError, ValueError):
    """The endpoint answered, but not with an SPSP response; ``field`` names what is wrong
    (``"shared_secret"``, ``"balance.current"``, ``"Content-Type"``, ``"body"``...)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class SpspHttpError(SpspError):
    """The endpoint answered with an HTTP status other than 200 (or a redirect we do not follow).

    ``error_id`` and ``error_message`` are the ``id``/``message`` of an RFC 9 error body, when
    the server sent one (``InvalidReceiverError`` for an unknown receiver).
    """

    def __init__(
        self,
        url: str,
        status: int,
        reason: str = "",
        *,
        error_id: str | None = None,
        error_message: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.url = url
        self.status = status
        self.error_id = error_id
        self.error_message = error_message
        text = f"SPSP endpoint {url} answered HTTP {status}"
        if reason:
            text += f" {reason}"
        said = ": ".join(part for part in (error_id, error_message) if part)
        if said:
            text += f" ({clip(said)})"
        if detail:
            text += f"; {detail}"
        super().__init__(text)


class SpspUnreachableError(SpspError, ConnectionError):
    """No HTTP answer: the name does not resolve, the connection is refused, TLS fails."""


class SpspTimeoutError(SpspError, TimeoutError):
    """The endpoint did not answer within the time allowed."""


@dataclass(frozen=True, slots=True)
class SpspBalance:
    """RFC 9's optional ``balance`` of an invoice or pull agreement, as integer strings in the
    units of ``asset_info`` (negative: the payer may push; positive: the payee may pull)."""

    maximum: str
    current: str


@dataclass(frozen=True, slots=True)
class SpspAssetInfo:
    """RFC 9's optional ``asset_info``: the currency the balance is stated in."""

    code: str
    scale: int


@dataclass(frozen=True, slots=True)
class SpspResponse:
    """A checked SPSP answer: where to open the STREAM connection and with which secret.

    ``extra`` keeps the fields this module does not interpret (``frequency_info``,
    ``timeline_info``, anything newer), unchanged, so an application can still read them.
    """

    destination_account: str
    shared_secret: bytes = field(repr=False)
    balance: SpspBalance | None = None
    asset_info: SpspAssetInfo | None = None
    receiver_info: Mapping[str, Any] | None = None
    receipts_enabled: bool | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def to_json(self) -> dict[str, Any]:
        """The JSON body a server sends for this response (the shared secret in padded base64,
        as RFC 9 writes it)."""
        return response_document(
            self.destination_account,
            self.shared_secret,
            balance=self.balance,
            asset_info=self.asset_info,
            receiver_info=self.receiver_info,
            receipts_enabled=self.receipts_enabled,
            extra=self.extra,
        )


# --- pure: pointers and URLs ---------------------------------------------------------------


def is_loopback_host(host: str) -> bool:
    """Whether `host` (a name or an IP literal, brackets allowed) is this machine."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def endpoint_url(target: str, *, allow_http: bool = False) -> str:
    """The SPSP endpoint URL for a payment pointer or an endpoint URL.

    ``$example.com`` resolves to ``https://example.com/.well-known/pay`` and ``$example.com/bob``
    to ``https://example.com/bob`` (RFC 26). A pointer has no userinfo, port, query or fragment
    and only ASCII; anything else is invalid, as RFC 26 requires. An ``https://`` URL is used as
    given; ``http://`` only for a loopback host, or for any host when `allow_http` is true. RFC 9
    forbids query strings in SPSP requests, so a URL with one is refused.

    Raises:
        InvalidPointerError: naming ``pointer`` or ``url``.
    """
    if not isinstance(target, str):
        raise InvalidPointerError(f"expected a string, got {type(target).__name__}", field="url")
    text = target.strip()
    if text.startswith("$"):
        return _pointer_url(text)
    scheme = text.split(":", 1)[0].lower() if ":" in text else ""
    if scheme in ("http", "https"):
        return _checked_url(text, allow_http=allow_http)
    raise InvalidPointerError(
        f"expected a payment pointer ($host/path) or an https:// URL, got {clip(text)!r}",
        field="url",
    )


def _pointer_url(pointer: str) -> str:
    body = pointer[1:]
    if not body.isascii():
        raise InvalidPointerError("must be ASCII (RFC 26)", field="pointer")
    for char, what in (("?", "query"), ("#", "fragment")):
        if char in body:
            raise InvalidPointerError(f"a payment pointer has no {what} (RFC 26)", field="pointer")
    host, slash, path = body.partition("/")
    path = slash + path
    if "@" in host:
        raise InvalidPointerError("a payment pointer has no user info (RFC 26)", field="pointer")
    if host.startswith("["):
        if not host.endswith("]") or not _is_ipv6(host[1:-1]):
            raise InvalidPointerError(f"{host!r} is not an IPv6 literal", field="pointer")
    elif ":" in host:
        raise InvalidPointerError(
            "a payment pointer has no port (RFC 26); give the endpoint's URL instead",
            field="pointer",
        )
    elif not _HOST_RE.fullmatch(host):
        shown = f"host {host!r} is not a host name" if host else "the host is missing"
        raise InvalidPointerError(f"{shown} (expected $host or $host/path)", field="pointer")
    if not _PATH_RE.fullmatch(path):
        raise InvalidPointerError(
            f"path {clip(path)!r} has characters a URL path cannot hold", field="pointer"
        )
    if path in ("", "/"):
        path = WELL_KNOWN_PATH
    return f"https://{host}{path}"


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _checked_url(url: str, *, allow_http: bool) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidPointerError(f"not a valid URL: {exc}", field="url") from None
    if not url.isascii():
        raise InvalidPointerError("must be ASCII", field="url")
    if not parts.hostname:
        raise InvalidPointerError("the host is missing", field="url")
    if parts.username is not None or parts.password is not None:
        raise InvalidPointerError("credentials in the URL are not supported", field="url")
    if parts.query or url.rstrip("#").endswith("?"):
        raise InvalidPointerError("SPSP requests carry no query string (RFC 9)", field="url")
    if parts.fragment:
        raise InvalidPointerError("an SPSP endpoint URL has no fragment", field="url")
    scheme = parts.scheme.lower()
    if scheme == "http" and not allow_http and not is_loopback_host(parts.hostname):
        raise InvalidPointerError(
            "plain http:// only to a loopback host (RFC 9 wants HTTPS: whoever can change the "
            "answer can redirect the payment); use https://",
            field="url",
        )
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path or '/'}"


# --- pure: response bodies -----------------------------------------------------------------


def parse_response(document: Any) -> SpspResponse:
    """Check a decoded JSON body and return what it says.

    Required: ``destination_account`` (an ILP address, RFC 15) and ``shared_secret`` (32 bytes
    in base64; padded standard base64 as RFC 9 writes it, or base64url, which some servers
    send). Optional and checked when present: ``balance`` (``maximum``/``current`` integer
    strings), ``asset_info`` (``code`` a non-empty string, ``scale`` 0-255), ``receiver_info``
    (an object), ``receipts_enabled`` (a boolean). Other fields go to ``extra``.

    Raises:
        SpspResponseError: naming the first field that is missing or wrong.
    """
    if not isinstance(document, dict):
        raise SpspResponseError(f"expected a JSON object, got {json_kind(document)}", field="body")
    destination = document.get("destination_account")
    if destination is None:
        raise SpspResponseError("required field is missing", field="destination_account")
    if not isinstance(destination, str):
        raise SpspResponseError(
            f"expected a string, got {json_kind(destination)}", field="destination_account"
        )
    if not is_valid_address(destination):
        raise SpspResponseError(
            f"{clip(destination)!r} is not an ILP address (RFC 15)", field="destination_account"
        )
    secret = _shared_secret(document.get("shared_secret"))
    known = {
        "destination_account",
        "shared_secret",
        "balance",
        "asset_info",
        "receiver_info",
        "receipts_enabled",
    }
    receiver_info = document.get("receiver_info")
    if receiver_info is not None and not isinstance(receiver_info, dict):
        raise SpspResponseError(
            f"expected an object, got {json_kind(receiver_info)}", field="receiver_info"
        )
    receipts = document.get("receipts_enabled")
    if receipts is not None and not isinstance(receipts, bool):
        raise SpspResponseError(
            f"expected true or false, got {json_kind(receipts)}", field="receipts_enabled"
        )
    return SpspResponse(
        destination_account=destination,
        shared_secret=secret,
        balance=_balance(document.get("balance")),
        asset_info=_asset_info(document.get("asset_info")),
        receiver_info=MappingProxyType(dict(receiver_info)) if receiver_info is not None else None,
        receipts_enabled=receipts,
        extra=MappingProxyType({k: v for k, v in document.items() if k not in known}),
    )


def _shared_secret(value: Any) -> bytes:
    name = "shared_secret"
    if value is None:
        raise SpspResponseError("required field is missing", field=name)
    if not isinstance(value, str):
        raise SpspResponseError(f"expected a base64 string, got {json_kind(value)}", field=name)
    if not _BASE64_RE.fullmatch(value):
        raise SpspResponseError("is not base64", field=name)
    core = value.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(core + "=" * (-len(core) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SpspResponseError("is not base64", field=name) from None
    if len(raw) != SHARED_SECRET_LENGTH:
        raise SpspResponseError(
            f"expected {SHARED_SECRET_LENGTH} bytes, got {len(raw)}", field=name
        )
    return raw


def _integer_string(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise SpspResponseError(f"expected an integer string, got {json_kind(value)}", field=name)
    if not _INTEGER_RE.fullmatch(value):
        raise SpspResponseError(f"expected an integer string, got {clip(value)!r}", field=name)
    return str(int(value))


def _balance(value: Any) -> SpspBalance | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SpspResponseError(f"expected an object, got {json_kind(value)}", field="balance")
    for key in ("maximum", "current"):
        if key not in value:
            raise SpspResponseError("required field is missing", field=f"balance.{key}")
    return SpspBalance(
        maximum=_integer_string(value["maximum"], "balance.maximum"),
        current=_integer_string(value["current"], "balance.current"),
    )


def _asset_info(value: Any) -> SpspAssetInfo | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SpspResponseError(f"expected an object, got {json_kind(value)}", field="asset_info")
    code = value.get("code")
    if not isinstance(code, str) or not code:
        raise SpspResponseError(
            f"expected a non-empty string, got {json_kind(code)}", field="asset_info.code"
        )
    scale = value.get("scale")
    if isinstance(scale, bool) or not isinstance(scale, int) or not 0 <= scale <= 255:
        shown = repr(scale) if type(scale) is int else json_kind(scale)
        raise SpspResponseError(
            f"expected an integer from 0 to 255, got {shown}", field="asset_info.scale"
        )
    return SpspAssetInfo(code=code, scale=scale)


def response_document(
    destination_account: str,
    shared_secret: bytes,
    *,
    balance: SpspBalance | None = None,
    asset_info: SpspAssetInfo | None = None,
    receiver_info: Mapping[str, Any] | None = None,
    receipts_enabled: bool | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON object an SPSP server answers with; checked with `parse_response`'s rules so a
    server never sends what a client would refuse.

    Raises:
        SpspResponseError: as `parse_response` would for the resulting body.
    """
    document: dict[str, Any] = dict(extra or {})
    document["destination_account"] = destination_account
    if not isinstance(shared_secret, bytes | bytearray):
        raise SpspResponseError(
            f"expected bytes, got {type(shared_secret).__name__}", field="shared_secret"
        )
    document["shared_secret"] = base64.b64encode(bytes(shared_secret)).decode("ascii")
    if balance is not None:
        document["balance"] = {"maximum": balance.maximum, "current": balance.current}
    if asset_info is not None:
        document["asset_info"] = {"code": asset_info.code, "scale": asset_info.scale}
    if receiver_info is not None:
        document["receiver_info"] = dict(receiver_info)
    if receipts_enabled is not None:
        document["receipts_enabled"] = receipts_enabled
    parse_response(document)
    return document


# --- I/O: the client -----------------------------------------------------------------------


async def query(
    target: str,
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 (one bound for DNS, connect, redirects and body)
    allow_http: bool = False,
    ssl_context: ssl.SSLContext | None = None,
    session: ClientSession | None = None,
) -> SpspResponse:
    """Resolve a payment pointer or endpoint URL and GET its SPSP answer (RFC 9 "Query").

    Redirects are followed only within the same scheme, host and port (at most
    `MAX_REDIRECTS`); RFC 26 wants the sender able to check where a payment goes, so a redirect
    elsewhere is an `SpspHttpError` naming the new location, to be queried deliberately.
    `ssl_context` verifies a private CA's certificate; `session` reuses the caller's
    aiohttp session (its own timeout then applies as well).

    Raises:
        InvalidPointerError: the target is not a pointer or URL we query.
        SpspUnreachableError: no HTTP answer (DNS, refused connection, TLS failure).
        SpspTimeoutError: no complete answer within `timeout` seconds.
        SpspHttpError: a status other than 200.
        SpspResponseError: a 200 whose body is not a valid SPSP response.
    """
    import asyncio

    import aiohttp

    url = endpoint_url(target, allow_http=allow_http)
    owned = session is None
    client = session or aiohttp.ClientSession()
    try:
        async with asyncio.timeout(timeout):
            return await _get(client, url, ssl_context)
    except TimeoutError:
        raise SpspTimeoutError(f"SPSP endpoint {url} did not answer within {timeout:g} s") from None
    except aiohttp.ClientError as exc:
        raise SpspUnreachableError(f"SPSP endpoint {url} is unreachable: {_reason(exc)}") from None
    finally:
        if owned:
            await client.close()


async def _get(client: ClientSession, url: str, ssl_context: ssl.SSLContext | None) -> SpspResponse:
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        async with client.get(
            current,
            headers={"Accept": ACCEPT},
            allow_redirects=False,
            ssl=ssl_context if ssl_context is not None else True,
        ) as response:
            status = response.status
            if status in (301, 302, 303, 307, 308):
                location = response.headers.get("Location", "")
                target = urljoin(current, location)
                if not location or not _same_origin(current, target):
                    detail = (
                        f"it redirects to {clip(target)}; query that URL if you trust it"
                        if location
                        else "a redirect without a Location"
                    )
                    raise SpspHttpError(url, status, response.reason or "", detail=detail)
                current = target
                continue
            body = await _read_body(response)
            if status != 200:
                raise _http_error(url, status, response.reason or "", body)
            media = response.content_type.lower()
            if media not in _JSON_TYPES:
                raise SpspResponseError(
                    f"expected {SPSP_CONTENT_TYPE}, got {clip(media or 'none')!r}",
                    field="Content-Type",
                )
            try:
                document = json.loads(body)
            except (UnicodeDecodeError, ValueError):
                raise SpspResponseError("is not JSON", field="body") from None
            return parse_response(document)
    raise SpspHttpError(url, 310, "", detail=f"more than {MAX_REDIRECTS} redirects")


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port) and not pb.query


async def _read_body(response: Any) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(16 * 1024):
        size += len(chunk)
        if size > MAX_BODY:
            raise SpspResponseError(f"longer than {MAX_BODY} bytes", field="body")
        chunks.append(chunk)
    return b"".join(chunks)


def _http_error(url: str, status: int, reason: str, body: bytes) -> SpspHttpError:
    error_id = message = None
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        document = None
    if isinstance(document, dict):
        if isinstance(document.get("id"), str):
            error_id = document["id"]
        if isinstance(document.get("message"), str):
            message = document["message"]
    return SpspHttpError(url, status, reason, error_id=error_id, error_message=message)


def _reason(exc: BaseException) -> str:
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, OSError):
        if os_error.errno and os_error.errno > 0:  # not asyncio's "Connect call failed (...)"
            return os.strerror(os_error.errno)
        if os_error.strerror:
            return os_error.strerror
    return clip(str(exc) or type(exc).__name__, 160)


# --- I/O: the server -----------------------------------------------------------------------


def check_path(path: str) -> str:
    """`path` if it can be an SPSP endpoint's path (absolute, URL path characters only).

    Raises:
        ValueError: naming ``path``.
    """
    if not isinstance(path, str) or not path.startswith("/") or not _PATH_RE.fullmatch(path):
        raise ValueError(f"path: expected an absolute URL path like /.well-known/pay, got {path!r}")
    return path


class AddressSource(Protocol):
    """What `SpspServer` needs of a STREAM server: a fresh address and secret per request."""

    def generate_address_and_secret(self, tag: str | None = None) -> tuple[str, bytes]:
        """A new ``(destination account, shared secret)`` pair for one client."""


class SpspServer:
    """An SPSP endpoint (RFC 9) in front of a STREAM server.

    Each ``GET path`` gets a fresh destination and secret (RFC 9: the secret should be
    different in each response) with ``Content-Type: application/spsp4+json`` and
    ``Cache-Control: no-cache``. A query string gets 400 (RFC 9), a request that accepts no
    JSON type 406, another path 404 with ``InvalidReceiverError``, a STREAM server that cannot
    answer yet 503.

    TLS: pass `ssl_context` to serve https directly; without it the server speaks plain HTTP,
    which is right on loopback or behind a proxy that terminates TLS. Use port 0 for a free
    port and read `port`/`url` after `start()`.
    """

    def __init__(
        self,
        stream_server: AddressSource,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = WELL_KNOWN_PATH,
        *,
        ssl_context: ssl.SSLContext | None = None,
        asset_info: SpspAssetInfo | None = None,
        receiver_info: Mapping[str, Any] | None = None,
        connection_tag: str | None = None,
    ) -> None:
        check_path(path)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port: expected 0 to 65535, got {port!r}")
        self._source = stream_server
        self._host = host
        self._port = port
        self.path = path
        self._ssl = ssl_context
        self._asset_info = asset_info
        self._receiver_info = dict(receiver_info) if receiver_info is not None else None
        self._tag = connection_tag
        self._runner: web.AppRunner | None = None
        self._bound: int | None = None
        #: Answers given since start (each one a fresh address and secret).
        self.answered = 0

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for); the configured one before start."""
        return self._bound if self._bound is not None else self._port

    @property
    def url(self) -> str:
        """The endpoint's URL, to hand to payers (``http://`` unless serving TLS)."""
        scheme = "https" if self._ssl is not None else "http"
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{scheme}://{host}:{self.port}{self.path}"

    async def start(self) -> None:
        """Bind and serve. Raises OSError when the address is taken or not ours."""
        from aiohttp import web

        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_get(self.path, self._answer)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port, ssl_context=self._ssl)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                self._bound = int(address[1])
                break

    async def stop(self) -> None:
        """Stop answering and close the listening socket; idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> SpspServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        if request.query_string or request.raw_path.endswith("?"):
            return _error(400, "InvalidRequestError", "SPSP requests carry no query string")
        if not _accepts_spsp(request.headers.get("Accept")):
            return _error(406, "NotAcceptableError", f"this endpoint answers {SPSP_CONTENT_TYPE}")
        try:
            destination, secret = self._source.generate_address_and_secret(self._tag)
            body = response_document(
                destination,
                secret,
                asset_info=self._asset_info,
                receiver_info=self._receiver_info,
            )
        except Exception:
            return _error(503, "ServiceUnavailableError", "the STREAM server is not ready")
        self.answered += 1
        return web.json_response(
            body,
            content_type=SPSP_CONTENT_TYPE,
            headers={"Cache-Control": "no-cache"},
        )

    async def _not_found(self, _request: web.Request) -> web.StreamResponse:
        return _error(404, "InvalidReceiverError", "Invalid receiver ID")


def _error(status: int, error_id: str, message: str) -> web.Response:
    from aiohttp import web

    return web.json_response(
        {"id": error_id, "message": message}, status=status, content_type=SPSP_CONTENT_TYPE
    )


def _accepts_spsp(accept: str | None) -> bool:
    """Whether an Accept header admits our JSON answer (absent: anything goes)."""
    if not accept or not accept.strip():
        return True
    wanted = {SPSP_CONTENT_TYPE, "application/spsp+json", "application/json", "application/*"}
    wanted.add("*/*")
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if media.lower() not in wanted:
            continue
        refused = any(
            p.replace(" ", "").lower() in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params
        )
        if not refused:
            return True
    return False
