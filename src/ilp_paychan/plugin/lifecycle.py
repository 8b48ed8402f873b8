"""`Lifecycle`: where a Plugin stands between `connect()` and `disconnect()`.

The Plugin is the only writer. The part answering the peer (`IncomingRequests`) reads it to decide
whether a request is served now, held until a `connect()` in progress is done, or refused; it
gets this object instead of the Plugin, so it cannot reach anything else.
"""

from __future__ import annotations

import asyncio


class Lifecycle:
    """The connection flags of one Plugin, and an event set while it is connected."""

    __slots__ = ("closing", "connected", "connecting", "ready")

    def __init__(self) -> None:
        #: connect() finished and disconnect() has not begun: the public calls work.
        self.connected = False
        #: A connect() attempt is running.
        self.connecting = False
        #: disconnect() is under way: new work is refused, running requests finish.
        self.closing = False
        #: Set when connected, cleared by disconnect(); requests held during connect() wait on it.
        self.ready = asyncio.Event()
