"""SPSP (RFC 9): payment pointer resolution (RFC 26), response checking, and a real aiohttp
server on 127.0.0.1 queried by the real client."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from ilp_paychan.stream import generate_address_and_secret, shared_secret_from_token, token_of
from ilp_paychan.stream.address import connection_id_of
from ilp_paychan.stream.spsp import (
    SPSP_CONTENT_TYPE,
    WELL_KNOWN_PATH,
    InvalidPointerError,
    SpspAssetInfo,
    SpspBalance,
    SpspHttpError,
    SpspResponse,
    SpspResponseError,
    SpspServer,
    SpspTimeoutError,
    SpspUnreachableError,
    endpoint_url,
    is_loopback_host,
    parse_response,
    query,
    response_document,
)
from testkit.tls import write_self_signed

SECRET = bytes(range(32))
SECRET_B64 = base64.b64encode(SECRET).decode()
ADDRESS = "test.receiver.abc"

# --- pointers and URLs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pointer", "url"),
    [
        ("$example.com", "https://example.com/.well-known/pay"),
        ("$example.com/", "https://example.com/.well-known/pay"),
        ("$example.com/invoices/12345", "https://example.com/invoices/12345"),
        ("$bob.example.com", "https://bob.example.com/.well-known/pay"),
        ("$example.com/bob", "https://example.com/bob"),
        ("$example.com/alice", "https://example.com/alice"),
        ("$127.0.0.1/p", "https://127.0.0.1/p"),
        ("$[::1]/p", "https://[::1]/p"),
        ("$ex-ample.com/a%20b/c@d:e", "https://ex-ample.com/a%20b/c@d:e"),
        ("  $example.com/bob  ", "https://example.com/bob"),
    ],
)
def test_pointer_resolves_as_rfc26_says(pointer: str, url: str) -> None:
    assert endpoint_url(pointer) == url


@pytest.mark.parametrize(
    ("pointer", "words"),
    [
        ("$", "host is missing"),
        ("$/bob", "host is missing"),
        ("$example.com:8443/bob", "no port"),
        ("$user@example.com/bob", "no user info"),
        ("$example.com/bob?x=1", "no query"),
        ("$example.com/bob#top", "no fragment"),
        ("$exämple.com", "ASCII"),
        ("$example.com/b o b", "characters a URL path cannot hold"),
        ("$example.com/a%2", "characters a URL path cannot hold"),
        ("$-example.com", "not a host name"),
        ("$example.com./x", "not a host name"),
        ("$[::1", "not an IPv6 literal"),
        ("$[nope]/x", "not an IPv6 literal"),
    ],
)
def test_bad_pointers_are_refused_naming_the_field(pointer: str, words: str) -> None:
    with pytest.raises(InvalidPointerError) as info:
        endpoint_url(pointer)
    assert info.value.field == "pointer"
    assert words in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/spsp/alice", "https://example.com/spsp/alice"),
        ("HTTPS://Example.com:8443", "https://example.com:8443/"),
        ("http://127.0.0.1:8080/.well-known/pay", "http://127.0.0.1:8080/.well-known/pay"),
        ("http://localhost/x", "http://localhost/x"),
        ("http://[::1]:9/x", "http://[::1]:9/x"),
    ],
)
def test_urls_are_taken_as_given(url: str, expected: str) -> None:
    assert endpoint_url(url) == expected


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://example.com/alice", "plain http:// only to a loopback host"),
        ("https://example.com/alice?invoice=1", "no query string"),
        ("https://example.com/alice?", "no query string"),
        ("https://example.com/alice#x", "no fragment"),
        ("https://user:pw@example.com/", "credentials"),
        ("https:///nohost", "host is missing"),
        ("https://example.com:99999/", "not a valid URL"),
        ("ftp://example.com/", "expected a payment pointer"),
        ("example.com/alice", "expected a payment pointer"),
        ("", "expected a payment pointer"),
    ],
)
def test_bad_urls_are_refused_naming_the_field(url: str, words: str) -> None:
    with pytest.raises(InvalidPointerError) as info:
        endpoint_url(url)
    assert info.value.field == "url"
    assert words in str(info.value)


def test_plain_http_elsewhere_only_when_allowed() -> None:
    assert endpoint_url("http://example.com/a", allow_http=True) == "http://example.com/a"
    for host in ("127.8.9.1", "[::1]", "LOCALHOST", "a.localhost"):
        assert is_loopback_host(host), host
    assert not is_loopback_host("10.0.0.1")


_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_host = st.lists(_label, min_size=1, max_size=4).map(".".join)
_segment = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@",
    max_size=12,
)
_path = st.lists(_segment, max_size=4).map(lambda parts: "".join("/" + p for p in parts))


@given(_host, _path)
def test_every_valid_pointer_resolves_to_its_https_url(host: str, path: str) -> None:
    url = endpoint_url(f"${host}{path}")
    parts = urlsplit(url)
    assert parts.scheme == "https"
    assert parts.hostname == host
    assert (parts.port, parts.username, parts.query, parts.fragment) == (None, None, "", "")
    assert parts.path == (WELL_KNOWN_PATH if path in ("", "/") else path)


@given(st.text(max_size=60))
@settings(max_examples=400)
def test_any_text_resolves_or_is_refused_cleanly(text: str) -> None:
    fields: list[str] = []
    for candidate in ("$" + text, "https://" + text, text):
        try:
            url = endpoint_url(candidate)
        except InvalidPointerError as exc:
            fields.append(exc.field)
            continue
        parts = urlsplit(url)
        assert parts.scheme in ("https", "http")
        assert parts.hostname
        assert (parts.query, parts.fragment, parts.username) == ("", "", None)
    assert set(fields) <= {"pointer", "url"}


# --- response bodies -------------------------------------------------------------------------


def test_minimal_response() -> None:
    response = parse_response({"destination_account": ADDRESS, "shared_secret": SECRET_B64})
    assert response.destination_account == ADDRESS
    assert response.shared_secret == SECRET
    assert (response.balance, response.asset_info, response.receipts_enabled) == (None,) * 3
    assert dict(response.extra) == {}
    assert SECRET_B64 not in repr(response)


def test_full_invoice_response_from_rfc9() -> None:
    document = {
        "destination_account": "example.ilpdemo.red~invoice123",
        "shared_secret": "6jR5iNIVRvqeasJeCty6C+YB5X9FhSOUPCL/5nha5Vs=",
        "balance": {"maximum": "-10000", "current": "-5360"},
        "asset_info": {"code": "USD", "scale": 2},
        "receiver_info": {"name": "XYZ Store", "image_url": "https://red.ilpdemo.org/logo.jpg"},
        "frequency_info": {"type": "MONTH", "interval": 1},
        "receipts_enabled": True,
    }
    response = parse_response(document)
    assert response.balance == SpspBalance(maximum="-10000", current="-5360")
    assert response.asset_info == SpspAssetInfo(code="USD", scale=2)
    assert dict(response.receiver_info or {})["name"] == "XYZ Store"
    assert response.receipts_enabled is True
    assert response.extra["frequency_info"] == {"type": "MONTH", "interval": 1}
    assert parse_response(response.to_json()) == response


def test_base64url_and_unpadded_secrets_are_accepted() -> None:
    raw = bytes([0xFB, 0xFF] * 16)
    for text in (
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    ):
        response = parse_response({"destination_account": ADDRESS, "shared_secret": text})
        assert response.shared_secret == raw


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"destination_account": None}, "destination_account", "missing"),
        ({"destination_account": 5}, "destination_account", "expected a string"),
        ({"destination_account": "nope"}, "destination_account", "not an ILP address"),
        ({"destination_account": "test."}, "destination_account", "not an ILP address"),
        ({"shared_secret": None}, "shared_secret", "missing"),
        ({"shared_secret": 7}, "shared_secret", "expected a base64 string"),
        ({"shared_secret": "!!!!"}, "shared_secret", "not base64"),
        ({"shared_secret": "QQ"}, "shared_secret", "expected 32 bytes, got 1"),
        ({"shared_secret": base64.b64encode(bytes(33)).decode()}, "shared_secret", "got 33"),
        ({"balance": []}, "balance", "expected an object"),
        ({"balance": {"current": "1"}}, "balance.maximum", "missing"),
        ({"balance": {"maximum": 5, "current": "1"}}, "balance.maximum", "integer string"),
        ({"balance": {"maximum": "5", "current": "1.5"}}, "balance.current", "integer string"),
        ({"asset_info": {"scale": 2}}, "asset_info.code", "non-empty string"),
        ({"asset_info": {"code": "", "scale": 2}}, "asset_info.code", "non-empty string"),
        ({"asset_info": {"code": "USD", "scale": 256}}, "asset_info.scale", "got 256"),
        ({"asset_info": {"code": "USD", "scale": True}}, "asset_info.scale", "a boolean"),
        ({"asset_info": {"code": "USD", "scale": "2"}}, "asset_info.scale", "a string"),
        ({"receiver_info": "me"}, "receiver_info", "expected an object"),
        ({"receipts_enabled": "yes"}, "receipts_enabled", "true or false"),
    ],
)
def test_bad_responses_name_the_field(change: dict[str, Any], field: str, words: str) -> None:
    document: dict[str, Any] = {"destination_account": ADDRESS, "shared_secret": SECRET_B64}
    for key, value in change.items():
        if value is None:
            document.pop(key)
        else:
            document[key] = value
    with pytest.raises(SpspResponseError) as info:
        parse_response(document)
    assert info.value.field == field
    assert words in str(info.value)


@pytest.mark.parametrize("body", [None, [], "x", 3])
def test_a_body_that_is_not_an_object(body: Any) -> None:
    with pytest.raises(SpspResponseError) as info:
        parse_response(body)
    assert info.value.field == "body"


@given(
    st.binary(min_size=32, max_size=32),
    st.lists(st.from_regex(r"[A-Za-z0-9_~-]{1,12}", fullmatch=True), min_size=1, max_size=5),
    st.one_of(st.none(), st.integers(-(2**70), 2**70)),
    st.one_of(st.none(), st.integers(0, 255)),
)
def test_response_document_round_trips(
    secret: bytes, segments: list[str], amount: int | None, scale: int | None
) -> None:
    balance = None if amount is None else SpspBalance(maximum=str(amount), current=str(-amount))
    asset = None if scale is None else SpspAssetInfo(code="XRP", scale=scale)
    address = "g." + ".".join(segments)
    document = response_document(address, secret, balance=balance, asset_info=asset)
    assert document["shared_secret"].endswith("=")  # padded base64, as RFC 9 shows
    again = parse_response(json.loads(json.dumps(document)))
    assert again == SpspResponse(address, secret, balance, asset)


def test_response_document_refuses_what_a_client_would() -> None:
    with pytest.raises(SpspResponseError) as info:
        response_document("test.x", bytes(16))
    assert info.value.field == "shared_secret"
    with pytest.raises(SpspResponseError) as info:
        response_document("bad address", bytes(32))
    assert info.value.field == "destination_account"


# --- a real server and client on loopback ------------------------------------------------------


class _Stream:
    """The addresses a real STREAM server hands out (the package's own derivation)."""

    def __init__(self) -> None:
        self.server_secret = os.urandom(32)
        self.address = "test.spsp.receiver"
        self.tags: list[str | None] = []
        self.fail = False

    def generate_address_and_secret(self, tag: str | None = None) -> tuple[str, bytes]:
        if self.fail:
            raise RuntimeError("not listening yet")
        self.tags.append(tag)
        return generate_address_and_secret(self.server_secret, self.address, connection_tag=tag)


@pytest.fixture
async def served() -> AsyncIterator[tuple[SpspServer, _Stream]]:
    source = _Stream()
    server = SpspServer(source, "127.0.0.1", 0, connection_tag="spsp")
    async with server:
        yield server, source


async def test_query_gets_a_fresh_address_and_secret_each_time(
    served: tuple[SpspServer, _Stream],
) -> None:
    server, source = served
    assert server.url == f"http://127.0.0.1:{server.port}{WELL_KNOWN_PATH}"
    first = await query(server.url)
    second = await query(server.url)
    assert first.destination_account != second.destination_account
    assert first.shared_secret != second.shared_secret
    for response in (first, second):
        connection = connection_id_of(source.address, response.destination_account)
        assert connection is not None
        expected = shared_secret_from_token(source.server_secret, token_of(connection))
        assert response.shared_secret == expected
    assert server.answered == 2
    assert source.tags == ["spsp", "spsp"]


async def test_the_answer_carries_rfc9_headers(served: tuple[SpspServer, _Stream]) -> None:
    server, _ = served
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.url, headers={"Accept": "application/spsp4+json"}) as response,
    ):
        assert response.status == 200
        assert response.content_type == SPSP_CONTENT_TYPE
        assert response.headers["Cache-Control"] == "no-cache"
        body = json.loads(await response.read())
    assert set(body) == {"destination_account", "shared_secret"}


@pytest.mark.parametrize(
    ("suffix", "headers", "status", "error_id"),
    [
        ("?x=1", {}, 400, "InvalidRequestError"),
        ("", {"Accept": "text/html"}, 406, "NotAcceptableError"),
        ("", {"Accept": "application/spsp4+json;q=0"}, 406, "NotAcceptableError"),
        ("/nobody", {}, 404, "InvalidReceiverError"),
    ],
)
async def test_the_server_refuses_what_rfc9_refuses(
    served: tuple[SpspServer, _Stream],
    suffix: str,
    headers: dict[str, str],
    status: int,
    error_id: str,
) -> None:
    server, _ = served
    base = f"http://127.0.0.1:{server.port}"
    url = base + (suffix if suffix.startswith("/") else WELL_KNOWN_PATH + suffix)
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers=headers) as response,
    ):
        assert response.status == status
        assert json.loads(await response.read())["id"] == error_id


async def test_unknown_receiver_is_an_http_error_with_its_id(
    served: tuple[SpspServer, _Stream],
) -> None:
    server, _ = served
    with pytest.raises(SpspHttpError) as info:
        await query(f"http://127.0.0.1:{server.port}/nobody")
    assert info.value.status == 404
    assert info.value.error_id == "InvalidReceiverError"
    assert "HTTP 404 Not Found (InvalidReceiverError: Invalid receiver ID)" in str(info.value)


async def test_a_stream_server_not_ready_gives_503(served: tuple[SpspServer, _Stream]) -> None:
    server, source = served
    source.fail = True
    with pytest.raises(SpspHttpError) as info:
        await query(server.url)
    assert info.value.status == 503


async def test_nothing_listening_is_unreachable() -> None:
    server = SpspServer(_Stream(), "127.0.0.1", 0)
    await server.start()
    url = server.url
    await server.stop()
    with pytest.raises(SpspUnreachableError) as info:
        await query(url)
    assert url in str(info.value)
    assert isinstance(info.value, ConnectionError)


async def test_a_silent_server_times_out() -> None:
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    silent = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        with pytest.raises(SpspTimeoutError) as info:
            await query(f"http://127.0.0.1:{port}/", timeout=0.3)
        assert "did not answer within 0.3 s" in str(info.value)
    finally:
        for writer in held:
            writer.close()
        silent.close()
        await silent.wait_closed()


async def _serve_app(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, int(runner.addresses[0][1])


async def test_odd_answers_are_response_errors() -> None:
    good = {"destination_account": ADDRESS, "shared_secret": SECRET_B64}

    async def html(_: web.Request) -> web.Response:
        return web.Response(text="<html>", content_type="text/html")

    async def not_json(_: web.Request) -> web.Response:
        return web.Response(body=b"{", content_type=SPSP_CONTENT_TYPE)

    async def huge(_: web.Request) -> web.Response:
        return web.Response(body=b" " * 70_000 + b"{}", content_type=SPSP_CONTENT_TYPE)

    async def plain_json(_: web.Request) -> web.Response:
        return web.json_response(good)

    async def short_secret(_: web.Request) -> web.Response:
        return web.json_response({**good, "shared_secret": "QUJD"})

    async def same_host(request: web.Request) -> web.Response:
        raise web.HTTPFound("/plain")

    async def elsewhere(_: web.Request) -> web.Response:
        raise web.HTTPFound("https://other.example/pay")

    app = web.Application()
    for path, handler in (
        ("/html", html),
        ("/notjson", not_json),
        ("/huge", huge),
        ("/plain", plain_json),
        ("/short", short_secret),
        ("/moved", same_host),
        ("/away", elsewhere),
    ):
        app.router.add_get(path, handler)
    runner, port = await _serve_app(app)
    base = f"http://127.0.0.1:{port}"
    try:
        for path, field in (("/html", "Content-Type"), ("/notjson", "body"), ("/huge", "body")):
            with pytest.raises(SpspResponseError) as info:
                await query(base + path)
            assert info.value.field == field, path
        with pytest.raises(SpspResponseError) as info:
            await query(base + "/short")
        assert info.value.field == "shared_secret"
        assert (await query(base + "/plain")).shared_secret == SECRET
        assert (await query(base + "/moved")).destination_account == ADDRESS
        with pytest.raises(SpspHttpError) as moved:
            await query(base + "/away")
        assert "redirects to https://other.example/pay" in str(moved.value)
    finally:
        await runner.cleanup()


async def test_tls_with_a_private_certificate(tmp_path: Path) -> None:
    cert, key = write_self_signed(tmp_path, "spsp-test")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    source = _Stream()
    async with SpspServer(source, "127.0.0.1", 0, "/alice", ssl_context=server_context) as server:
        assert server.url.startswith("https://127.0.0.1:")
        with pytest.raises(SpspUnreachableError):  # not trusted by default
            await query(server.url)
        trusting = ssl.create_default_context(cafile=str(cert))
        response = await query(server.url, ssl_context=trusting)
    assert response.destination_account.startswith(source.address + ".")


def test_server_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="path"):
        SpspServer(_Stream(), path="pay")
    with pytest.raises(ValueError, match="port"):
        SpspServer(_Stream(), port=70000)
