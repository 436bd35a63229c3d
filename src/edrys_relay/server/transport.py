"""The WebSocket stack behind the :class:`~edrys_relay.server.peer.Peer` interface.

Sending writes the frame straight into the connection's write buffer (as
``websockets.broadcast`` does), so a broadcast costs one write per receiver and never awaits
the slowest one. The write buffer is the bounded send queue: a receiver whose buffer stays
above ``send_buffer_high`` for ``slow_consumer_seconds``, or grows past ``send_buffer_max``,
is dropped; its client reconnects and resyncs, which the CRDT makes safe.
"""

from __future__ import annotations

import itertools
import logging
import time

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from edrys_relay.config import Settings

logger = logging.getLogger(__name__)

_ids = itertools.count(1)


class WebSocketPeer:
    """A server-side WebSocket connection as a hub peer."""

    __slots__ = ("_behind_since", "_conn", "_high", "_max", "_slow_seconds", "id")

    def __init__(self, connection: ServerConnection, settings: Settings) -> None:
        self._conn = connection
        self._high = settings.send_buffer_high
        self._max = settings.send_buffer_max
        self._slow_seconds = settings.slow_consumer_seconds
        self._behind_since: float | None = None
        self.id = f"c{next(_ids)}"

    def __repr__(self) -> str:
        return f"<peer {self.id}>"

    def send(self, data: bytes | str) -> None:
        conn = self._conn
        protocol = conn.protocol
        if protocol.state is not State.OPEN:
            return
        if isinstance(data, str):
            protocol.send_text(data.encode())
        else:
            protocol.send_binary(data)
        conn.send_data()
        transport = conn.transport
        if transport is not None and transport.get_write_buffer_size() > self._high:
            self._check_slow(transport.get_write_buffer_size())
        else:
            self._behind_since = None

    def _check_slow(self, buffered: int) -> None:
        now = time.monotonic()
        if self._behind_since is None:
            self._behind_since = now
        if buffered > self._max or now - self._behind_since >= self._slow_seconds:
            logger.warning(
                "%s dropped: receiver too slow (%d bytes waiting for %.1f s)",
                self.id,
                buffered,
                now - self._behind_since,
            )
            # The close frame would queue behind the backlog it is meant to end: abort.
            self._conn.transport.abort()

    def close(self, code: int, reason: str) -> None:
        if self._conn.protocol.state is not State.OPEN:
            return
        self._conn.protocol.send_close(code, reason)
        self._conn.send_data()


__all__ = ["WebSocketPeer"]
