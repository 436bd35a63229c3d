"""The server: one port, four doors (design.md "What runs").

``RelayServer`` owns the hubs and the listening socket. The opening handshake decides the door
from the request path (``protocol/routing.py``); plain HTTP requests are answered in
``process_request`` without an upgrade. Each connection then runs one short loop: receive a
frame, hand it to its hub, close only this connection on a protocol error.

Security (docs/security.md): before the upgrade, a foreign ``Origin`` gets 403 and a missing or
invalid room token 401; after it, a connection over the total or per-address cap is shed with
1013, every frame passes the guards of ``server/guard.py``, and a connection is closed with 1008
when its token expires.
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
from websockets.datastructures import MultipleValuesError
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from edrys_relay import __version__
from edrys_relay.config import Settings
from edrys_relay.protocol.errors import ProtocolError, UnsupportedData
from edrys_relay.protocol.routing import (
    Route,
    SignalingRoute,
    StreamRoute,
    YjsRoute,
    route_request,
)
from edrys_relay.security.addresses import client_address, parse_proxies
from edrys_relay.security.origins import origin_allowed
from edrys_relay.server import http, tls
from edrys_relay.server.access import (
    AccessControl,
    Grants,
    Lease,
    RedactingLogger,
    redacted_target,
)
from edrys_relay.server.guard import FrameRate, YjsGuard
from edrys_relay.server.limits import AwarenessOwners, ConnectionCounter, SecurityStats
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
TRY_AGAIN_LATER = 1013


class RelayServer:
    """An edrys-relay server; use as ``async with RelayServer(settings) as server``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.writer = StoreWriter(lambda: open_store(settings))
        self.rooms = RoomHub(settings, self.writer)
        self.access = AccessControl(settings)
        self.stats = SecurityStats()
        self.counter = ConnectionCounter(
            settings.max_connections, settings.max_connections_per_address
        )
        self.owners = AwarenessOwners(settings.max_awareness_client_ids)
        self._proxies = parse_proxies(settings.trusted_proxies)
        self.topics = TopicHub(
            show_client_count=not self.access.enabled,
            require_subscription=self.access.enabled,
            max_topics_per_connection=settings.max_topics_per_connection,
            max_subscribers_per_topic=settings.max_subscribers_per_topic,
        )
        self.outbox = Outbox()
        self.static = http.StaticFiles.from_package()
        self.started_at = time.monotonic()
        self._server: Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._stream_handler: StreamHandler | None = None
        self.streams = StreamHub(settings)
        self.set_stream_handler(StreamDoor(self.streams, self.access))

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> RelayServer:
        s = self.settings
        ssl_context = None
        if s.tls_cert_file is not None and s.tls_key_file is not None:
            ssl_context = tls.server_context(s.tls_cert_file, s.tls_key_file)
        await self.writer.__aenter__()
        try:
            self._server = await serve(
                self._handle,
                s.host,
                s.port,
                ssl=ssl_context,
                process_request=self._process_request,
                select_subprotocol=self.access.select_subprotocol,
                logger=RedactingLogger(logging.getLogger("websockets.server")),
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
            route = route_request(request.path, max_room_length=self.settings.max_room_name)
        except ProtocolError as exc:
            logger.info("refused upgrade to %r: %s", redacted_target(request.path), exc)
            return http.response(400, f"{exc}\n".encode())
        if not self._origin_allowed(request):
            self.stats.refused_origin += 1
            logger.info("refused upgrade to %r: origin not allowed", redacted_target(request.path))
            return http.response(403, b"origin not allowed\n")
        if not self.access.admits(route, self.access.grants(request)):
            self.stats.refused_token += 1
            logger.info("refused upgrade to %r: no valid token", redacted_target(request.path))
            return http.response(401, b"a valid room token is required\n")
        return None

    def _origin_allowed(self, request: Request) -> bool:
        try:
            origin = request.headers.get("Origin")
        except MultipleValuesError:
            return False
        return origin_allowed(origin, self.settings.allowed_origins)

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
            "security": {**self.stats.as_dict(), "topics_refused": self.topics.refused},
        }

    # -- connections --------------------------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        request = connection.request
        assert request is not None
        route = route_request(request.path, max_room_length=self.settings.max_room_name)
        peer = WebSocketPeer(connection, self.settings, self.outbox)
        address = _address(connection)
        client = self._client_address(connection, request)
        if not self.counter.admit(client):
            self.stats.shed += 1
            logger.warning("%s shed with 1013: connection cap reached (from %s)", peer.id, client)
            await connection.close(TRY_AGAIN_LATER, "try again later")
            return
        grants = self.access.grants(request)
        lease = Lease()
        expiry = self._close_on_expiry(connection, peer, grants, lease)
        try:
            await self._dispatch(connection, peer, route, grants, lease, address)
        finally:
            self.counter.release(client)
            if expiry is not None:
                expiry.cancel()
            if lease.closing is not None:
                await lease.closing
        logger.info(
            "%s closed code=%s reason=%s",
            peer.id,
            connection.close_code,
            connection.close_reason or "-",
        )

    async def _dispatch(
        self,
        connection: ServerConnection,
        peer: WebSocketPeer,
        route: Route,
        grants: Grants,
        lease: Lease,
        address: str,
    ) -> None:
        if isinstance(route, YjsRoute):
            rooms = self.rooms.rooms
            if route.room not in rooms and len(rooms) >= self.settings.max_rooms:
                self.stats.shed += 1
                logger.warning("%s shed with 1013: %d rooms loaded", peer.id, len(rooms))
                await connection.close(TRY_AGAIN_LATER, "try again later")
                return
            read_only = self.access.enabled and not grants.can_write(route.room)
            logger.info(
                "%s open yjs room=%s userid=%s%s from %s",
                peer.id,
                route.room,
                route.params.get("userid", "-"),
                " read-only" if read_only else "",
                address,
            )
            await self._serve_yjs(connection, peer, route, read_only, lease)
        elif isinstance(route, SignalingRoute):
            logger.info("%s open signaling from %s", peer.id, address)
            allowed = frozenset(grants.rooms) if self.access.enabled else None
            await self._serve_signaling(connection, peer, allowed, lease)
        elif self._stream_handler is not None:
            logger.info("%s open stream from %s", peer.id, address)
            await self._stream_handler(connection, peer, route)
        else:
            await connection.close(1008, "stream relay not enabled")

    def _client_address(self, connection: ServerConnection, request: Request) -> str:
        remote = connection.remote_address
        peer_ip = str(remote[0]) if remote else "-"
        return client_address(peer_ip, request.headers.get_all("X-Forwarded-For"), self._proxies)

    def _close_on_expiry(
        self, connection: ServerConnection, peer: WebSocketPeer, grants: Grants, lease: Lease
    ) -> asyncio.TimerHandle | None:
        """Close the connection when its first token runs out (threats.md A7)."""
        expires = grants.expires
        if expires is None:
            return None

        def expire() -> None:
            self.stats.tokens_expired += 1
            logger.info("%s token expired, closing with 1008", peer.id)
            lease.expired = True
            # close() ends the handshake, or aborts the connection after close_timeout
            lease.closing = asyncio.create_task(connection.close(1008, "token expired"))

        delay = max(0.0, expires - time.time())
        return asyncio.get_running_loop().call_later(delay, expire)

    async def _serve_yjs(
        self,
        connection: ServerConnection,
        peer: WebSocketPeer,
        route: YjsRoute,
        read_only: bool,
        lease: Lease,
    ) -> None:
        connection.protocol.max_message_size = self.settings.max_message_yjs
        try:
            room = await self.rooms.join(route.room, peer)
        except StoreError:
            logger.exception("%s cannot load room %s, closing with 1011", peer.id, route.room)
            await connection.close(1011, "storage unavailable")
            return
        guard = YjsGuard(
            room=room,
            peer_id=peer.id,
            read_only=read_only,
            settings=self.settings,
            owners=self.owners,
            stats=self.stats,
            notify=peer.send,
        )

        def on_frame(frame: str | bytes) -> None:
            if isinstance(frame, str):
                raise UnsupportedData("text frame on the Yjs door")
            checked = guard.check(frame)
            if checked is not None:
                room.receive(peer, checked)

        try:
            await _receive_loop(connection, peer, on_frame, lease)
        finally:
            self.rooms.leave(room, peer)
            self.owners.release(room.name, peer.id)

    async def _serve_signaling(
        self,
        connection: ServerConnection,
        peer: WebSocketPeer,
        allowed: frozenset[str] | None,
        lease: Lease,
    ) -> None:
        connection.protocol.max_message_size = self.settings.max_message_signaling
        self.topics.connect(peer, allowed)
        max_topic = self.settings.max_topic_length
        rate = FrameRate(self.settings, self.stats, time.monotonic)

        def on_frame(frame: str | bytes) -> None:
            rate.check()
            if not isinstance(frame, str):
                raise UnsupportedData("binary frame on the signaling door")
            self.topics.receive(peer, frame, max_topic_length=max_topic)

        try:
            await _receive_loop(connection, peer, on_frame, lease)
        finally:
            self.topics.disconnect(peer)


StreamHandler = Callable[[ServerConnection, WebSocketPeer, StreamRoute], Awaitable[None]]


async def _receive_loop(
    connection: ServerConnection,
    peer: WebSocketPeer,
    on_frame: Callable[[str | bytes], None],
    lease: Lease,
) -> None:
    """Feed frames to ``on_frame`` until the connection ends; a bad frame closes only it."""
    try:
        async for frame in connection:
            if not lease.expired:
                on_frame(frame)
    except ProtocolError as exc:
        logger.warning("%s protocol error, closing with %d: %s", peer.id, exc.close_code, exc)
        await _close_discarding(connection, exc.close_code, exc.close_reason)
    except ConnectionClosed:
        pass
    except Exception:
        logger.exception("%s internal error, closing with 1011", peer.id)
        await _close_discarding(connection, 1011, "internal error")


async def _close_discarding(connection: ServerConnection, code: int, reason: str) -> None:
    """Close, discarding what the peer still sends meanwhile.

    A flooding peer fills the incoming queue, which pauses reading; its close frame would then
    stay unread and the handshake would only end at ``close_timeout``.
    """
    closing = asyncio.create_task(connection.close(code, reason))
    with contextlib.suppress(ConnectionClosed):
        async for _ in connection:  # bounded: ends when the close handshake completes
            pass
    await closing


def _address(connection: ServerConnection) -> str:
    remote = connection.remote_address
    return f"{remote[0]}:{remote[1]}" if remote else "-"


__all__ = ["SERVICE_RESTART", "TRY_AGAIN_LATER", "RelayServer", "StreamHandler"]
