"""The ``/stream`` connection handler: the WebSocket side of :mod:`edrys_relay.server.streams`.

:class:`RelayServer` hands every upgrade routed to ``/stream`` (protocols.md §3.1) to a
:class:`StreamDoor`. It applies the door's message size limit (5 MiB, as the Node relay's
``maxPayload``; larger closes with 1009), asks for binary delivery when the URL says
``?binary=1``, runs the client's writer task next to the receive loop, and always unregisters
the client when the connection ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from edrys_relay.protocol.routing import StreamRoute
from edrys_relay.server.streams import StreamHub
from edrys_relay.server.transport import WebSocketPeer

logger = logging.getLogger(__name__)

BINARY_PARAM = "binary"
_TRUE = frozenset({"1", "true", "yes"})


class ConnectionChannel:
    """A :class:`~edrys_relay.server.streams.FrameChannel` over a websockets connection.

    Frames are written straight into the transport, as ``websockets.broadcast`` does, and
    websockets' own write flow control tells when the buffer is low again: it pauses above the
    transport's high-water mark (32 KiB) and resumes at the low-water mark (8 KiB). A viewer is
    ready for a frame when its buffer is at or below the low-water mark.
    """

    __slots__ = ("_conn", "_peer")

    def __init__(self, connection: ServerConnection, peer: WebSocketPeer) -> None:
        self._conn = connection
        self._peer = peer

    def writable(self) -> bool:
        transport = self._conn.transport
        low, _high = transport.get_write_buffer_limits()
        return transport.get_write_buffer_size() <= low

    def write(self, payload: bytes, *, text: bool) -> None:
        protocol = self._conn.protocol
        if protocol.state is not State.OPEN:
            return
        # Control messages wait in the peer's outbox until the end of the loop turn; write them
        # first so a viewer never sees a frame before the `source-available` that announced it.
        self._peer.flush()
        if text:
            protocol.send_text(payload)
        else:
            protocol.send_binary(payload)
        self._conn.send_data()

    async def drained(self) -> None:
        # A closed connection wakes drain() with its error; the receive loop reports it.
        with contextlib.suppress(Exception):
            await self._conn.drain()

    async def ping(self) -> asyncio.Future[float] | None:
        try:
            return asyncio.ensure_future(await self._conn.ping())
        except ConnectionClosed:
            return None

    @property
    def is_open(self) -> bool:
        return self._conn.protocol.state is State.OPEN

    def abort(self) -> None:
        self._conn.transport.abort()

    def buffered(self) -> int:
        return self._conn.transport.get_write_buffer_size()


class StreamDoor:
    """Serve one ``/stream`` connection from upgrade to close."""

    def __init__(self, hub: StreamHub) -> None:
        self.hub = hub

    async def __call__(
        self, connection: ServerConnection, peer: WebSocketPeer, route: StreamRoute
    ) -> None:
        settings = self.hub.settings
        connection.protocol.max_message_size = settings.stream_max_message
        limit_unsent(connection, settings.stream_kernel_unsent)
        binary = route.params.get(BINARY_PARAM, "").lower() in _TRUE
        client = self.hub.connect(peer, ConnectionChannel(connection, peer), binary=binary)
        writer = asyncio.create_task(client.run_writer(), name=f"{peer.id} stream writer")
        try:
            async for message in connection:
                self.hub.receive(client, message)
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("%s internal error, closing with 1011", peer.id)
            await connection.close(1011, "internal error")
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            self.hub.disconnect(client)


def limit_unsent(connection: ServerConnection, limit: int) -> None:
    """Let the kernel hold at most ``limit`` bytes not yet sent on the wire (0: no limit).

    With TCP_NOTSENT_LOWAT (Linux, macOS) a backlog stays in the transport's buffer, where
    latest-frame-wins sees it, instead of megabytes of old frames queueing in the kernel's
    auto-tuned send buffer. Bytes in flight (sent, not yet acknowledged) are not limited, so
    throughput on long paths is unaffected.
    """
    option = getattr(socket, "TCP_NOTSENT_LOWAT", None)
    sock = connection.transport.get_extra_info("socket")
    if limit <= 0 or option is None or sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, option, limit)


__all__ = ["BINARY_PARAM", "ConnectionChannel", "StreamDoor", "limit_unsent"]
