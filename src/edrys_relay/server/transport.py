"""The WebSocket stack behind the :class:`~edrys_relay.server.peer.Peer` interface.

A broadcast frames its message once (server frames are unmasked, so every receiver gets the
same bytes) and queues those bytes on each receiver; an :class:`Outbox` shared by all
connections flushes every receiver's queue with one ``transport.write`` per event-loop turn.
Under load one write carries many messages, which is where the CPU goes (docs/performance.md).
Nothing awaits the slowest receiver.

The transport's write buffer is the bounded send queue: a receiver whose buffer stays above
``send_buffer_high`` for ``slow_consumer_seconds``, or grows past ``send_buffer_max``, is
dropped; its client reconnects and resyncs, which the CRDT makes safe.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import struct
import time

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from edrys_relay.config import Settings

logger = logging.getLogger(__name__)

_ids = itertools.count(1)

_BINARY = 0x82  # FIN + opcode 2
_TEXT = 0x81  # FIN + opcode 1
_PACK_16 = struct.Struct("!BBH").pack
_PACK_64 = struct.Struct("!BBQ").pack


def frame_message(data: bytes | str) -> bytes:
    """One unfragmented, unmasked (server-to-client) WebSocket frame, RFC 6455 §5.2."""
    if isinstance(data, str):
        payload, head = data.encode(), _TEXT
    else:
        payload, head = data, _BINARY
    size = len(payload)
    if size < 126:
        header = bytes((head, size))
    elif size < 65536:
        header = _PACK_16(head, 126, size)
    else:
        header = _PACK_64(head, 127, size)
    return header + payload


class Outbox:
    """Frames each message once and flushes queued frames once per event-loop turn."""

    __slots__ = ("_dirty", "_last_data", "_last_frame", "_loop")

    def __init__(self) -> None:
        self._dirty: list[WebSocketPeer] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_data: bytes | str | None = None
        self._last_frame = b""

    def frame(self, data: bytes | str) -> bytes:
        # Hubs pass the same object to every receiver of a broadcast: frame it once.
        if data is not self._last_data:
            self._last_frame = frame_message(data)
            self._last_data = data
        return self._last_frame

    def schedule(self, peer: WebSocketPeer) -> None:
        if not self._dirty:
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            self._loop.call_soon(self.flush)
        self._dirty.append(peer)

    def flush(self) -> None:
        """Write every queued frame; each connection gets one write call."""
        dirty, self._dirty = self._dirty, []
        self._last_data, self._last_frame = None, b""
        for peer in dirty:
            peer.flush()


class WebSocketPeer:
    """A server-side WebSocket connection as a hub peer."""

    __slots__ = (
        "_behind_since",
        "_conn",
        "_high",
        "_max",
        "_outbox",
        "_plain",
        "_queued",
        "_slow",
        "id",
    )

    def __init__(self, connection: ServerConnection, settings: Settings, outbox: Outbox) -> None:
        self._conn = connection
        self._outbox = outbox
        self._queued: list[bytes] | None = None
        # Extensions are fixed by the handshake; without any, frames are plain RFC 6455.
        self._plain = not connection.protocol.extensions
        self._high = settings.send_buffer_high
        self._max = settings.send_buffer_max
        self._slow = settings.slow_consumer_seconds
        self._behind_since: float | None = None
        self.id = f"c{next(_ids)}"

    def __repr__(self) -> str:
        return f"<peer {self.id}>"

    def send(self, data: bytes | str) -> None:
        # Hot path, once per receiver per message: no state check here; flush() drops the
        # queue of a connection that is no longer open.
        queued = self._queued
        if queued is not None:
            queued.append(self._outbox.frame(data))
        elif self._plain:
            self._queued = [self._outbox.frame(data)]
            self._outbox.schedule(self)
        else:
            self._send_via_websockets(data)

    def _send_via_websockets(self, data: bytes | str) -> None:
        # A negotiated extension (compression) transforms frames: let websockets do it.
        protocol = self._conn.protocol
        if protocol.state is not State.OPEN:
            return
        if isinstance(data, str):
            protocol.send_text(data.encode())
        else:
            protocol.send_binary(data)
        self._conn.send_data()

    def flush(self) -> None:
        """Write this connection's queued frames now (the Outbox calls this once per turn)."""
        queued = self._queued
        if queued is None:
            return
        self._queued = None
        transport = self._conn.transport
        # After a close frame no data frame may follow; a closing peer resyncs on reconnect.
        if self._conn.protocol.state is not State.OPEN or transport.is_closing():
            return
        transport.write(queued[0] if len(queued) == 1 else b"".join(queued))
        buffered = transport.get_write_buffer_size()
        if buffered > self._high:
            self._check_slow(buffered)
        else:
            self._behind_since = None

    def _check_slow(self, buffered: int) -> None:
        now = time.monotonic()
        if self._behind_since is None:
            self._behind_since = now
        if buffered > self._max or now - self._behind_since >= self._slow:
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
        self.flush()
        self._conn.protocol.send_close(code, reason)
        self._conn.send_data()


__all__ = ["Outbox", "WebSocketPeer", "frame_message"]
