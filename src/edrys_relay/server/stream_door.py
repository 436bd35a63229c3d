"""The ``/stream`` connection handler: the WebSocket side of :mod:`edrys_relay.server.streams`.

:class:`RelayServer` hands every upgrade routed to ``/stream`` (protocols.md §7.1) to a
:class:`StreamDoor`. It applies the door's message size limit (5 MiB, as the Node relay's
``maxPayload``; larger closes with 1009), asks for binary delivery when the URL says
``?binary=1``, runs the client's writer task while the connection is open, and always
unregisters the client when the connection ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from edrys_relay.protocol.routing import StreamRoute
from edrys_relay.server.access import AccessControl, Grants
from edrys_relay.server.connection import Connection
from edrys_relay.server.streams import StreamClient, StreamHub
from edrys_relay.server.transport import frame_payload

logger = logging.getLogger(__name__)

BINARY_PARAM = "binary"
_TRUE = frozenset({"1", "true", "yes"})


class ConnectionChannel:
    """A :class:`~edrys_relay.server.streams.FrameChannel` over a :class:`Connection`.

    Frames are written straight into the transport, and the connection's write flow control
    tells when the buffer is low again: it pauses above the transport's high-water mark
    (32 KiB) and resumes at the low-water mark (8 KiB). A viewer is ready for a frame when its
    buffer is at or below the low-water mark.
    """

    __slots__ = ("_conn", "_frames")

    def __init__(self, connection: Connection, frames: FrameCache) -> None:
        self._conn = connection
        self._frames = frames

    def writable(self) -> bool:
        transport = self._conn.transport
        if transport is None:
            return False
        low, _high = transport.get_write_buffer_limits()
        return transport.get_write_buffer_size() <= low

    def write(self, payload: bytes, *, text: bool) -> None:
        # Control messages wait in the connection's queue until the end of the loop turn;
        # write_frame() writes them first, so a viewer never sees a frame before the
        # `source-available` that announced it.
        self._conn.write_frame(self._frames.frame(payload, text=text))

    async def drained(self) -> None:
        await self._conn.drain()

    async def ping(self) -> asyncio.Future[float] | None:
        return self._conn.ping()

    @property
    def is_open(self) -> bool:
        return self._conn.is_open

    def abort(self) -> None:
        self._conn.abort()

    def buffered(self) -> int:
        transport = self._conn.transport
        return transport.get_write_buffer_size() if transport is not None else 0


class FrameCache:
    """The frame of the newest payload: every viewer is sent the same bytes object, framed once."""

    __slots__ = ("_frame", "_payload", "_text")

    def __init__(self) -> None:
        self._payload: bytes | None = None
        self._text = False
        self._frame = b""

    def frame(self, payload: bytes, *, text: bool) -> bytes:
        if payload is not self._payload or text is not self._text:
            self._frame = frame_payload(payload, text=text)
            self._payload, self._text = payload, text
        return self._frame


class StreamClientDoor:
    """One ``/stream`` connection: messages to the hub, and the client's writer task."""

    __slots__ = ("_client", "_hub", "_writer")

    def __init__(self, hub: StreamHub, client: StreamClient) -> None:
        self._hub = hub
        self._client = client
        self._writer = asyncio.create_task(client.run_writer(), name="stream writer")

    def receive(self, message: str | bytes) -> None:
        self._hub.receive(self._client, message)

    def closed(self) -> None:
        self._writer.cancel()
        self._hub.disconnect(self._client)


class StreamDoor:
    """Opens ``/stream`` connections: limits, the binary option, permissions, the hub."""

    def __init__(self, hub: StreamHub, access: AccessControl | None = None) -> None:
        self.hub = hub
        self.access = access
        self.frames = FrameCache()

    def __call__(
        self, connection: Connection, route: StreamRoute, grants: Grants
    ) -> StreamClientDoor:
        settings = self.hub.settings
        connection.ws.max_message_size = settings.stream_max_message
        limit_unsent(connection, settings.stream_kernel_unsent)
        binary = route.params.get(BINARY_PARAM, "").lower() in _TRUE
        # docs/security.md: watching needs a token for the room, sourcing a source token
        permissions = grants if self.access is not None and self.access.enabled else None
        client = self.hub.connect(
            connection,
            ConnectionChannel(connection, self.frames),
            binary=binary,
            permissions=permissions,
        )
        return StreamClientDoor(self.hub, client)


def limit_unsent(connection: Connection, limit: int) -> None:
    """Let the kernel hold at most ``limit`` bytes not yet sent on the wire (0: no limit).

    With TCP_NOTSENT_LOWAT (Linux, macOS) a backlog stays in the transport's buffer, where
    latest-frame-wins sees it, instead of megabytes of old frames queueing in the kernel's
    auto-tuned send buffer. Bytes in flight (sent, not yet acknowledged) are not limited, so
    throughput on long paths is unaffected.
    """
    option = getattr(socket, "TCP_NOTSENT_LOWAT", None)
    transport = connection.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if limit <= 0 or option is None or sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, option, limit)


__all__ = [
    "BINARY_PARAM",
    "ConnectionChannel",
    "FrameCache",
    "StreamClientDoor",
    "StreamDoor",
    "limit_unsent",
]
