"""The server: one port, four doors (design.md "What runs").

``RelayServer`` owns the hubs and the listening socket. The opening handshake decides the door
from the request path (``protocol/routing.py``); plain HTTP requests are answered in
``process_request`` without an upgrade. Each open connection (``server/connection.py``) then
hands every complete message to its door (``server/doors.py``, ``server/stream_door.py``),
which passes it to its hub; a protocol error closes only this connection.

Security (docs/security.md): before the upgrade, a foreign ``Origin`` gets 403 and a missing or
invalid room token 401; after it, a connection over the total or per-address cap is shed with
1013, every frame passes the guards of ``server/guard.py``, and a connection is closed with 1008
when its token expires.

Operations (docs/operations.md): ``GET /metrics`` (``server/metrics.py``), one structured log
record per connection event (room names as labels, ``security/redaction.py``), and a graceful
drain on shutdown whose phases are timed and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from websockets.datastructures import MultipleValuesError
from websockets.http11 import Request, Response

from edrys_relay import __version__
from edrys_relay.config import Settings
from edrys_relay.protocol.errors import ProtocolError
from edrys_relay.protocol.routing import (
    Route,
    SignalingRoute,
    YjsRoute,
    route_request,
)
from edrys_relay.security.addresses import client_address, parse_proxies
from edrys_relay.security.origins import origin_allowed
from edrys_relay.security.redaction import redacted_target, room_label
from edrys_relay.server import http, tls
from edrys_relay.server.access import (
    AccessControl,
    Grants,
    RedactingLogger,
    select_subprotocol,
)
from edrys_relay.server.bus import LocalBus, RoomBus
from edrys_relay.server.connection import READ_BUFFER_SIZE, Connection, Traffic
from edrys_relay.server.doors import SignalingDoor, YjsDoor
from edrys_relay.server.limits import AwarenessOwners, ConnectionCounter, SecurityStats
from edrys_relay.server.metrics import RelayCollector, RelayMetrics, authorized
from edrys_relay.server.peer import Peer
from edrys_relay.server.rooms import Room, RoomHub
from edrys_relay.server.stream_door import StreamDoor
from edrys_relay.server.streams import StreamHub
from edrys_relay.server.topics import TopicHub
from edrys_relay.server.transport import Outbox
from edrys_relay.storage import open_store
from edrys_relay.storage.base import StoreError
from edrys_relay.storage.writer import StoreWriter

if TYPE_CHECKING:
    from edrys_relay.server.bridge import Bridge

logger = logging.getLogger(__name__)

SERVICE_RESTART = 1012
TRY_AGAIN_LATER = 1013
LISTEN_BACKLOG = 1024
"""Pending TCP connections the kernel queues for us (a class joining at once)."""
DOORS = ("yjs", "signaling", "stream")


def door_of(route: Route) -> str:
    """The door name of a route, as logs and metric labels give it."""
    if isinstance(route, YjsRoute):
        return "yjs"
    if isinstance(route, SignalingRoute):
        return "signaling"
    return "stream"


@dataclass(slots=True)
class DrainReport:
    """What a shutdown did and how long each phase took (logged as ``server.drained``)."""

    connections: int = 0
    """Connections open when the drain began."""
    aborted: int = 0
    """Connections cut off: their closing handshake had not finished within close_timeout."""
    flush_seconds: float = 0.0
    """Committing (and relaying) the updates received before the listener closed."""
    close_seconds: float = 0.0
    """From the first 1012 close frame to the last connection gone."""
    total_seconds: float = 0.0
    """From the start of the shutdown to the store closed."""


class RelayServer:
    """An edrys-relay server; use as ``async with RelayServer(settings) as server``.

    It is the :class:`~edrys_relay.server.connection.Host` of every connection: it answers
    plain HTTP and refuses upgrades before the handshake completes, gives each open connection
    its door, and keeps the set of connections for keepalive and shutdown.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.outbox = Outbox()
        self.metrics = RelayMetrics()
        self.bus: RoomBus
        if settings.redis_url is not None:
            from edrys_relay.cluster.bus import RedisBus, RedisCollector

            self.bus = redis_bus = RedisBus(
                settings, settings.redis_url, observe_commit=self.metrics.commit_seconds.observe
            )
            self.metrics.register(RedisCollector(redis_bus))
        else:
            # What a commit's callbacks relayed leaves in the loop turn the commit completed in.
            writer = StoreWriter(
                lambda: open_store(settings),
                after_commit=self.outbox.flush,
                observe_commit=self.metrics.commit_seconds.observe,
            )
            self.bus = LocalBus(writer)
        self.rooms = RoomHub(settings, self.bus)
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
        self.server_header = f"edrys-relay/{__version__}"
        self.wire_logger = RedactingLogger(logging.getLogger("websockets.server"))
        self.select_subprotocol = select_subprotocol
        self.max_message_size = max(
            settings.max_message_yjs, settings.max_message_signaling, settings.stream_max_message
        )
        self.static = http.StaticFiles.from_package()
        self.started_at = time.monotonic()
        self.connections: set[Connection] = set()
        self.read_buffer = memoryview(bytearray(READ_BUFFER_SIZE))
        self._admitted: dict[Connection, tuple[Route, Grants]] = {}
        """Route and verified tokens of upgrades process_request let through, until they open."""
        self._all_ended: asyncio.Event | None = None
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._joins: set[asyncio.Task[None]] = set()
        self.streams = StreamHub(settings)
        if settings.redis_url is not None:
            redis_bus.relay_hubs(self.topics, self.streams)
        self.stream_door = StreamDoor(self.streams, self.access)
        self.traffic = {door: Traffic(door) for door in DOORS}
        self.metrics.register(RelayCollector(self))
        self._signaling_grants: dict[Peer, Grants] = {}
        """Tokens of signaling connections, for the bridge (only with access control on)."""
        self.bridge: Bridge | None = None
        if settings.bridge_webrtc:
            self.bridge = self._make_bridge()

    def _make_bridge(self) -> Bridge:
        from edrys_relay.server.bridge import Bridge  # aiortc, imported only when asked for

        bridge = Bridge(
            self.settings, self.topics, self.rooms, self.owners, self.stats, self._can_write
        )
        self.topics.observer = bridge
        return bridge

    def _can_write(self, signaling: Peer, room: str) -> bool:
        """Whether a signaling connection's tokens let it write to ``room``."""
        if not self.access.enabled:
            return True
        grants = self._signaling_grants.get(signaling)
        return grants is not None and grants.can_write(room)

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> RelayServer:
        s = self.settings
        ssl_context = None
        if s.tls_cert_file is not None and s.tls_key_file is not None:
            ssl_context = tls.server_context(s.tls_cert_file, s.tls_key_file)
        await self.bus.start()
        try:
            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(
                lambda: Connection(self),
                s.host,
                s.port,
                ssl=ssl_context,
                ssl_handshake_timeout=s.open_timeout if ssl_context else None,
                backlog=LISTEN_BACKLOG,
            )
        except BaseException:
            await self.bus.aclose()
            raise
        self.started_at = time.monotonic()
        self._tasks = [
            asyncio.create_task(self._sweep_forever(), name="sweeper"),
            asyncio.create_task(self.metrics.watch_loop_lag(s.loop_lag_interval), name="loop lag"),
        ]
        if s.ping_interval > 0:
            self._tasks.append(asyncio.create_task(self._keepalive_forever(), name="keepalive"))
        logger.info(
            "listening on %s:%d",
            s.host,
            self.port,
            extra={
                "event": "server.listening",
                "host": s.host,
                "port": self.port,
                "tls": ssl_context is not None,
                "store": s.store,
                "redis": s.redis_url is not None,
                "version": __version__,
            },
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    async def shutdown(self) -> None:
        """Drain: stop accepting, commit pending updates, close every connection with 1012 and
        wait for it (at most ``close_timeout``), then commit the rest and close the store."""
        started = time.monotonic()
        report = None
        try:
            report = await self._close_connections()
        finally:
            await self.rooms.aclose()
            await self.bus.aclose()
        if report is None:
            return
        report.total_seconds = time.monotonic() - started
        logger.info(
            "drained: %d connections told 1012, %d of them cut off; %.3f s "
            "(flush %.3f s, close %.3f s)",
            report.connections,
            report.aborted,
            report.total_seconds,
            report.flush_seconds,
            report.close_seconds,
            extra={
                "event": "server.drained",
                "connections": report.connections,
                "aborted": report.aborted,
                "seconds": round(report.total_seconds, 4),
                "flush_seconds": round(report.flush_seconds, 4),
                "close_seconds": round(report.close_seconds, 4),
            },
        )

    async def _close_connections(self) -> DrainReport | None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        server = self._server
        if server is None:
            return None
        self._server = None
        server.close()
        report = DrainReport(connections=len(self.connections))
        logger.info(
            "draining: stopped accepting, %d connections open",
            report.connections,
            extra={"event": "server.draining", "connections": report.connections},
        )
        # Relay what is committed before telling clients to reconnect (docs/threats.md F8).
        started = time.monotonic()
        await self.rooms.flush()
        report.flush_seconds = time.monotonic() - started
        started = time.monotonic()
        if self.bridge is not None:
            await self.bridge.aclose()
        if self.connections:
            self._all_ended = asyncio.Event()
            closing = list(self.connections)
            for connection in closing:
                if connection.is_open:
                    connection.close(SERVICE_RESTART, "server restarting")
                else:
                    connection.abort()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.close_timeout):
                    await self._all_ended.wait()
            for connection in list(self.connections):
                # A receiver that does not read cannot take a close frame: cut it off.
                connection.abort()
            report.aborted = sum(c.ws.close_rcvd is None for c in closing)
        for task in list(self._joins):
            task.cancel()
        await server.wait_closed()
        report.close_seconds = time.monotonic() - started
        return report

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval)
            self.rooms.sweep()
            if self.bridge is not None:
                self.bridge.sweep()

    async def _keepalive_forever(self) -> None:
        """One sweep pings every connection; one that missed the previous ping is closed."""
        while True:
            await asyncio.sleep(self.settings.ping_interval)
            for connection in list(self.connections):
                connection.keepalive()

    # -- HTTP and the opening handshake (Host) ------------------------------------------------

    def process_request(self, connection: Connection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return self._serve_http(request)
        try:
            route = route_request(request.path, max_room_length=self.settings.max_room_name)
        except ProtocolError as exc:
            self.stats.refused_request += 1
            self._log_refusal(connection, request, "bad_request", "-", str(exc))
            return http.response(400, f"{exc}\n".encode())
        door = door_of(route)
        if not self._origin_allowed(request):
            self.stats.refused_origin += 1
            self._log_refusal(connection, request, "origin", door, "origin not allowed")
            return http.response(403, b"origin not allowed\n")
        grants = self.access.grants(request, route)
        if not self.access.admits(route, grants):
            self.stats.refused_token += 1
            self._log_refusal(connection, request, "token", door, "no valid token")
            return http.response(401, b"a valid room token is required\n")
        connection.traffic = self.traffic[door]
        self._admitted[connection] = (route, grants)
        return None

    def _log_refusal(
        self, connection: Connection, request: Request, reason: str, door: str, why: str
    ) -> None:
        path = redacted_target(request.path)
        logger.info(
            "refused upgrade to %s: %s",
            path,
            why,
            extra=connection.log_fields(
                "upgrade.refused",
                door=door,
                reason=reason,
                path=path,
                client=self._client_address(connection, request),
            ),
        )

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
            if path == "/metrics":
                return self._serve_metrics(request)
            found = self.static.lookup(path)
            if found is not None:
                return http.serve_static(request, found)
        return http.plain_http(request)

    def _serve_metrics(self, request: Request) -> Response:
        token = self.settings.metrics_token
        try:
            credentials = request.headers.get("Authorization")
            accept = request.headers.get("Accept")
        except MultipleValuesError:
            return http.response(400, b"repeated header\n", cors=False)
        if token is not None and not authorized(credentials, token):
            challenge = (("WWW-Authenticate", 'Bearer realm="metrics"'),)
            return http.response(401, b"a bearer token is required\n", extra=challenge, cors=False)
        body, content_type = self.metrics.render(accept)
        return http.response(200, body, content_type, (("Cache-Control", "no-store"),), cors=False)

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
                "total": self.counter.total,
            },
            "streams": self.streams.summary(),
            "security": {**self.stats.as_dict(), "topics_refused": self.topics.refused},
            **({"bridge": self.bridge.summary()} if self.bridge is not None else {}),
        }

    # -- open connections (Host) --------------------------------------------------------------

    def opened(self, connection: Connection, request: Request) -> None:
        route, grants = self._admitted.pop(connection)
        client = self._client_address(connection, request)
        if not self.counter.admit(client):
            self.stats.shed += 1
            logger.warning(
                "%s shed with 1013: connection cap reached (from %s)",
                connection.id,
                client,
                extra=connection.log_fields(
                    "connection.shed", client=client, reason="connections", code=TRY_AGAIN_LATER
                ),
            )
            connection.close(TRY_AGAIN_LATER, "try again later")
            return
        connection.client = client
        connection.traffic.open += 1
        connection.traffic.opened += 1
        self._close_on_expiry(connection, grants)
        address = connection.remote_address
        if isinstance(route, YjsRoute):
            self._open_yjs(connection, route, grants, address)
        elif isinstance(route, SignalingRoute):
            logger.info(
                "%s open signaling from %s",
                connection.id,
                address,
                extra=connection.log_fields("connection.open"),
            )
            connection.ws.max_message_size = self.settings.max_message_signaling
            allowed = frozenset(grants.rooms) if self.access.enabled else None
            if self.bridge is not None and self.access.enabled:
                self._signaling_grants[connection] = grants
            connection.attach(
                SignalingDoor(
                    connection,
                    self.topics,
                    allowed=allowed,
                    settings=self.settings,
                    stats=self.stats,
                )
            )
        else:
            logger.info(
                "%s open stream from %s",
                connection.id,
                address,
                extra=connection.log_fields("connection.open"),
            )
            connection.attach(self.stream_door(connection, route, grants))

    def ended(self, connection: Connection) -> None:
        self.connections.discard(connection)
        self._admitted.pop(connection, None)  # a handshake websockets refused after ours
        self._signaling_grants.pop(connection, None)
        if connection.client is not None:
            self.counter.release(connection.client)
            connection.traffic.open -= 1
            logger.info(
                "%s closed code=%s reason=%s",
                connection.id,
                connection.close_code,
                connection.close_reason or "-",
                extra=connection.log_fields(
                    "connection.closed",
                    code=connection.close_code,
                    reason=connection.close_reason or None,
                ),
            )
        if self._all_ended is not None and not self.connections:
            self._all_ended.set()

    def _open_yjs(
        self, connection: Connection, route: YjsRoute, grants: Grants, address: str
    ) -> None:
        rooms = self.rooms.rooms
        if route.room not in rooms and len(rooms) >= self.settings.max_rooms:
            self.stats.shed += 1
            logger.warning(
                "%s shed with 1013: %d rooms loaded",
                connection.id,
                len(rooms),
                extra=connection.log_fields(
                    "connection.shed", reason="rooms", code=TRY_AGAIN_LATER
                ),
            )
            connection.close(TRY_AGAIN_LATER, "try again later")
            return
        read_only = self.access.enabled and not grants.can_write(route.room)
        label = room_label(route.room)
        userid = route.params.get("userid", "-")
        logger.info(
            "%s open yjs room=%s userid=%s%s from %s",
            connection.id,
            label,
            userid,
            " read-only" if read_only else "",
            address,
            extra=connection.log_fields(
                "connection.open", room=label, userid=userid, read_only=read_only
            ),
        )
        connection.ws.max_message_size = self.settings.max_message_yjs
        room = self.rooms.join_loaded(route.room, connection)
        if room is not None:
            connection.attach(self._yjs_door(connection, room, read_only))
            return
        # The room must be loaded from storage first: read nothing until it is.
        connection.hold()
        task = asyncio.create_task(self._join(connection, route, read_only))
        self._joins.add(task)
        task.add_done_callback(self._joins.discard)

    async def _join(self, connection: Connection, route: YjsRoute, read_only: bool) -> None:
        try:
            room = await self.rooms.join(route.room, connection)
        except StoreError:
            label = room_label(route.room)
            logger.exception(
                "%s cannot load room %s, closing with 1011",
                connection.id,
                label,
                extra=connection.log_fields("room.load_failed", room=label, code=1011),
            )
            connection.close(1011, "storage unavailable")
            return
        except Exception:
            label = room_label(route.room)
            logger.exception(
                "%s internal error joining %s, closing with 1011",
                connection.id,
                label,
                extra=connection.log_fields("connection.internal_error", room=label, code=1011),
            )
            connection.close(1011, "internal error")
            return
        if not connection.is_open:
            self.rooms.leave(room, connection)
            return
        connection.attach(self._yjs_door(connection, room, read_only))

    def _yjs_door(self, connection: Connection, room: Room, read_only: bool) -> YjsDoor:
        return YjsDoor(
            connection,
            room,
            self.rooms,
            read_only=read_only,
            settings=self.settings,
            owners=self.owners,
            stats=self.stats,
        )

    def _client_address(self, connection: Connection, request: Request) -> str:
        assert connection.transport is not None
        remote = connection.transport.get_extra_info("peername")
        peer_ip = str(remote[0]) if remote else "-"
        return client_address(peer_ip, request.headers.get_all("X-Forwarded-For"), self._proxies)

    def _close_on_expiry(self, connection: Connection, grants: Grants) -> None:
        """Close the connection when its first token runs out (docs/threats.md A7)."""
        expires = grants.expires
        if expires is None:
            return

        def expire() -> None:
            connection.expiry = None
            self.stats.tokens_expired += 1
            logger.info(
                "%s token expired, closing with 1008",
                connection.id,
                extra=connection.log_fields("connection.token_expired", code=1008),
            )
            # Frames still read while the closing handshake runs are dropped: RFC 6455 delivers
            # data frames after a close frame, and a client could keep writing until
            # close_timeout otherwise.
            connection.mute()
            connection.close(1008, "token expired")

        delay = max(0.0, expires - time.time())
        connection.expiry = asyncio.get_running_loop().call_later(delay, expire)


__all__ = ["DOORS", "SERVICE_RESTART", "TRY_AGAIN_LATER", "DrainReport", "RelayServer", "door_of"]
