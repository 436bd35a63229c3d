"""The server: one port, four doors (design.md "What runs").

``RelayServer`` owns the hubs and the listening socket. The opening handshake decides the door
from the request path (``protocol/routing.py``); plain HTTP requests are answered in
``process_request`` without an upgrade. Each connection then runs one short loop: receive a
frame, hand it to its hub, close only this connection on a protocol error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from edrys_relay import __version__
from edrys_relay.config import Settings
from edrys_relay.protocol.errors import ProtocolError, UnsupportedData
from edrys_relay.protocol.routing import (
    SignalingRoute,
    StreamRoute,
    YjsRoute,
    route_request,
)
from edrys_relay.server import http
from edrys_relay.server.rooms import RoomHub
from edrys_relay.server.stream_door import StreamDoor
from edrys_relay.server.streams import StreamHub
from edrys_relay.server.topics import TopicHub
from edrys_relay.server.transport import Outbox, WebSocketPeer
from edrys_relay.storage import open_store
from edrys_relay.storage.base import StoreError
from edrys_relay.storage.writer import StoreWriter

logger = logging.getLogger(__name__)

SERVICE_RESTART = 1012


class RelayServer:
    """An edrys-relay server; use as ``async with RelayServer(settings) as server``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.writer = StoreWriter(lambda: open_store(settings))
        self.rooms = RoomHub(settings, self.writer)
        self.topics = TopicHub()
        self.outbox = Outbox()
        self.static = http.StaticFiles.from_package()
        self.started_at = time.monotonic()
        self._server: Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._stream_handler: StreamHandler | None = None
        self.streams = StreamHub(settings)
        self.set_stream_handler(StreamDoor(self.streams))

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> RelayServer:
        s = self.settings
        await self.writer.__aenter__()
        try:
            self._server = await serve(
                self._handle,
                s.host,
                s.port,
                process_request=self._process_request,
                max_size=max(s.max_message_yjs, s.max_message_signaling, s.stream_max_message),
                ping_interval=s.ping_interval,
                ping_timeout=s.ping_interval,
                open_timeout=s.open_timeout,
                close_timeout=s.close_timeout,
                # Compression would cost one deflate per receiver for every broadcast message.
                compression=None,
                server_header=f"edrys-relay/{__version__}",
            )
        except BaseException:
            await self.writer.aclose()
            raise
        self.started_at = time.monotonic()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="sweeper")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    async def shutdown(self) -> None:
        """Stop accepting, commit pending updates, close every connection with 1012, wait."""
        try:
            await self._close_connections()
        finally:
            await self.rooms.aclose()
            await self.writer.aclose()

    async def _close_connections(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        server = self._server
        if server is None:
            return
        self._server = None
        server.close(close_connections=False)
        # Relay what is committed before telling clients to reconnect (threats.md F8).
        await self.rooms.flush()
        connections = list(server.connections)
        closing = [
            asyncio.create_task(connection.close(SERVICE_RESTART, "server restarting"))
            for connection in connections
        ]
        if closing:
            await asyncio.wait(closing, timeout=self.settings.close_timeout)
        for connection in connections:
            # A receiver that does not read cannot take a close frame: cut it off.
            if connection.transport is not None and not connection.transport.is_closing():
                connection.transport.abort()
        for task in closing:
            task.cancel()
        await server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        sockets = self._server.sockets
        return int(sockets[0].getsockname()[1])

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval)
            self.rooms.sweep()

    def set_stream_handler(self, handler: StreamHandler) -> None:
        """Attach the ``/stream`` door (its own module builds it)."""
        self._stream_handler = handler

    # -- HTTP and routing ---------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return self._serve_http(request)
        try:
            route_request(request.path, max_room_length=self.settings.max_room_name)
        except ProtocolError as exc:
            logger.info("refused upgrade to %r: %s", request.path[:80], exc)
            return http.response(400, f"{exc}\n".encode())
        return None

    def _serve_http(self, request: Request) -> Response:
        path = request.path.partition("?")[0]
        if request.method == "GET":
            if path == "/healthz":
                return http.json_response(200, self.health())
            found = self.static.lookup(path)
            if found is not None:
                return http.serve_static(request, found)
        return http.plain_http(request)

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "uptime_seconds": round(time.monotonic() - self.started_at, 1),
            "rooms": len(self.rooms.rooms),
            "connections": {
                "yjs": self.rooms.connection_count,
                "signaling": self.topics.connection_count,
                "stream": self.streams.connection_count,
                "total": len(self._server.connections) if self._server else 0,
            },
            "streams": self.streams.summary(),
        }

    # -- connections --------------------------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        request = connection.request
        assert request is not None
        route = route_request(request.path, max_room_length=self.settings.max_room_name)
        peer = WebSocketPeer(connection, self.settings, self.outbox)
        address = _address(connection)
        if isinstance(route, YjsRoute):
            logger.info(
                "%s open yjs room=%s userid=%s from %s",
                peer.id,
                route.room,
                route.params.get("userid", "-"),
                address,
            )
            await self._serve_yjs(connection, peer, route)
        elif isinstance(route, SignalingRoute):
            logger.info("%s open signaling from %s", peer.id, address)
            await self._serve_signaling(connection, peer)
        elif self._stream_handler is not None:
            logger.info("%s open stream from %s", peer.id, address)
            await self._stream_handler(connection, peer, route)
        else:
            await connection.close(1008, "stream relay not enabled")
        logger.info(
            "%s closed code=%s reason=%s",
            peer.id,
            connection.close_code,
            connection.close_reason or "-",
        )

    async def _serve_yjs(
        self, connection: ServerConnection, peer: WebSocketPeer, route: YjsRoute
    ) -> None:
        connection.protocol.max_message_size = self.settings.max_message_yjs
        try:
            room = await self.rooms.join(route.room, peer)
        except StoreError:
            logger.exception("%s cannot load room %s, closing with 1011", peer.id, route.room)
            await connection.close(1011, "storage unavailable")
            return
        try:
            await _receive_loop(connection, peer, lambda frame: _binary(room.receive, peer, frame))
        finally:
            self.rooms.leave(room, peer)

    async def _serve_signaling(self, connection: ServerConnection, peer: WebSocketPeer) -> None:
        connection.protocol.max_message_size = self.settings.max_message_signaling
        self.topics.connect(peer)
        max_topic = self.settings.max_topic_length

        def on_frame(frame: str | bytes) -> None:
            if not isinstance(frame, str):
                raise UnsupportedData("binary frame on the signaling door")
            self.topics.receive(peer, frame, max_topic_length=max_topic)

        try:
            await _receive_loop(connection, peer, on_frame)
        finally:
            self.topics.disconnect(peer)


StreamHandler = Callable[[ServerConnection, WebSocketPeer, StreamRoute], Awaitable[None]]


def _binary(
    receive: Callable[[WebSocketPeer, bytes], None], peer: WebSocketPeer, frame: str | bytes
) -> None:
    if isinstance(frame, str):
        raise UnsupportedData("text frame on the Yjs door")
    receive(peer, frame)


async def _receive_loop(
    connection: ServerConnection,
    peer: WebSocketPeer,
    on_frame: Callable[[str | bytes], None],
) -> None:
    """Feed frames to ``on_frame`` until the connection ends; a bad frame closes only it."""
    try:
        async for frame in connection:
            on_frame(frame)
    except ProtocolError as exc:
        logger.warning("%s protocol error, closing with %d: %s", peer.id, exc.close_code, exc)
        await connection.close(exc.close_code, exc.close_reason)
    except ConnectionClosed:
        pass
    except Exception:
        logger.exception("%s internal error, closing with 1011", peer.id)
        await connection.close(1011, "internal error")


def _address(connection: ServerConnection) -> str:
    remote = connection.remote_address
    return f"{remote[0]}:{remote[1]}" if remote else "-"


__all__ = ["SERVICE_RESTART", "RelayServer", "StreamHandler"]
