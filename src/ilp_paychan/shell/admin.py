"""The admin HTTP endpoint: `/metrics` (Prometheus text) and `/status` (JSON), loopback by default.

It runs the stdlib's WSGI server in a daemon thread, so a slow scrape never stalls the asyncio
loop that moves money; the numbers themselves are read on that loop through
`run_coroutine_threadsafe` with a time limit, and a scrape that cannot get them answers 503.
No HTTP parsing is written here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Coroutine, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
#: How long a scrape waits for the loop before answering 503.
LOOP_TIMEOUT = 5.0


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("admin %s", format % args)


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (or `[v6]:PORT`) into a pair; raises ValueError naming what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    host = host.strip("[]")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected a port 0-65535 in {text!r}")
    return host, int(port)


class AdminServer:
    """Serves `/metrics` and `/status` from callables that produce the data on the loop."""

    def __init__(
        self,
        address: tuple[str, int],
        loop: asyncio.AbstractEventLoop,
        refresh: Callable[[], Coroutine[Any, Any, dict[str, Any]]],
        exposition: Callable[[], bytes],
    ) -> None:
        self._loop = loop
        self._refresh = refresh
        self._exposition = exposition
        self._server = make_server(
            address[0],
            address[1],
            self._app,
            server_class=_ThreadingServer,
            handler_class=_QuietHandler,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="ilp-paychan-admin", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually bound; the port is the real one when 0 was asked for."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """The base URL to print in logs (IPv6 hosts in brackets)."""
        host, port = self.address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def start(self) -> None:
        """Serve requests from a daemon thread, so a slow scrape never blocks the event loop."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket; waits up to 5 s for the thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _reply(start_response, "405 Method Not Allowed", b"GET only\n", "text/plain")
        if path not in ("/metrics", "/status"):
            body = b"not found; try /metrics or /status\n"
            return _reply(start_response, "404 Not Found", body, "text/plain")
        try:
            snapshot: dict[str, Any] = asyncio.run_coroutine_threadsafe(
                self._refresh(), self._loop
            ).result(LOOP_TIMEOUT)
        except Exception as exc:  # loop closing or too busy: say so, do not hang the scraper
            log.debug("admin refresh failed: %r", exc)
            return _reply(
                start_response, "503 Service Unavailable", b"status unavailable\n", "text/plain"
            )
        if path == "/metrics":
            return _reply(start_response, "200 OK", self._exposition(), CONTENT_TYPE_LATEST)
        body = json.dumps(snapshot, indent=2, sort_keys=False).encode() + b"\n"
        return _reply(start_response, "200 OK", body, "application/json")


def _reply(start_response: StartResponse, status: str, body: bytes, ctype: str) -> list[bytes]:
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]
