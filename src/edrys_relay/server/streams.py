"""Stream rooms behind the ``/stream`` door (protocols.md §3): sources, viewers, fan-out.

State is per room: a frame touches only the viewers of its source's room. A viewer whose
write buffer is low gets the frame written at once; a viewer that is behind keeps only the
newest frame in a one-frame slot, which its writer task sends when the buffer has drained. So
at most one frame waits per viewer beyond the one in flight, never a queue (latest frame wins;
docs/threats.md V16, L5). Replaced frames are counted per viewer, per room and for the hub. Short
control replies go straight to the connection through :class:`Peer`.

Keep-alive (§3.3): every ``stream_ping_interval`` each client gets a JSON ``ping`` and a
WebSocket ping; a client that has not answered the previous WebSocket ping by then is aborted.
A viewer that reads nothing cannot answer, so it is dropped after one to two intervals.

With a :class:`FrameRelay` (``cluster/relays.py``), a source's frames and its coming and
going also reach the room's viewers on other nodes, and one source per room holds across
nodes; viewer caps, counters and the ``info`` room list stay per node.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from edrys_relay.config import Settings
from edrys_relay.protocol import stream
from edrys_relay.security.ratelimit import TokenBucket
from edrys_relay.security.redaction import room_label
from edrys_relay.server.peer import Peer

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


class FrameChannel(Protocol):
    """A connection as the stream hub sees it: writes that never wait, and a way to wait."""

    def writable(self) -> bool:
        """Whether the write buffer is low enough to take another frame now."""
        ...

    def write(self, payload: bytes, *, text: bool) -> None:
        """Queue one message in the write buffer without waiting (dropped if closed)."""
        ...

    async def drained(self) -> None:
        """Return once the write buffer is low again, or the connection is closed."""
        ...

    async def ping(self) -> asyncio.Future[float] | None:
        """Send a WebSocket ping; the future completes on its pong. None if closed."""
        ...

    @property
    def is_open(self) -> bool:
        """Whether the connection is still open (not closing or closed)."""
        ...

    def abort(self) -> None:
        """Drop the connection at once (no closing handshake)."""
        ...

    def buffered(self) -> int:
        """Bytes waiting in the write buffer."""
        ...


class FrameRelay(Protocol):
    """Carries a room's frames and source changes to the other nodes (``cluster/relays.py``)."""

    def opened(self, room_id: str) -> None:
        """This node has members of ``room_id`` now."""
        ...

    def closed(self, room_id: str) -> None:
        """... and now no longer."""
        ...

    def frame(self, room_id: str, frame: stream.RelayFrame) -> None: ...

    def claim_source(self, client: StreamClient, room_id: str) -> None:
        """Claim the room's source for ``client`` across nodes; on success the relay calls
        :meth:`StreamHub.become_source`, else it sends the client the error."""
        ...

    def source_released(self, room_id: str) -> None: ...

    def joined(self, client: StreamClient, room_id: str) -> None:
        """A viewer joined a room with no source on this node: tell it of one elsewhere."""
        ...


class StreamPermissions(Protocol):
    """What a connection's room tokens allow on the stream door (docs/security.md)."""

    def may_view(self, room_id: str) -> bool: ...

    def may_source(self, room_id: str) -> bool: ...


class StreamClient:
    """One ``/stream`` connection: its room, its role and its latest-frame-wins slot.

    A frame offered while the write buffer is low is written at once; otherwise it waits in
    the one-frame slot, replacing (and counting as dropped) any frame already waiting, and the
    writer task sends whatever is newest when the buffer has drained.
    """

    def __init__(
        self,
        peer: Peer,
        channel: FrameChannel,
        *,
        binary: bool,
        stats: StreamStats,
        permissions: StreamPermissions | None = None,
    ) -> None:
        self.peer = peer
        self._stats = stats
        self.channel = channel
        self.binary = binary
        self.permissions = permissions
        """None when access control is off: every room is open, first source wins."""
        self.room: StreamRoom | None = None
        """The room whose frames this client receives (its ``roomId``)."""
        self.source_of: StreamRoom | None = None
        self.frames_sent = 0
        self.frames_dropped = 0
        self.latency_ms: float | None = None
        self.reported: dict[str, float] = {}
        self._pending: stream.RelayFrame | None = None
        self._wake = asyncio.Event()
        self._ping_due = False
        self._pinged = False
        self._pong: asyncio.Future[float] | None = None

    def __repr__(self) -> str:
        return f"<stream client {self.peer.id}>"

    def offer(self, frame: stream.RelayFrame) -> bool:
        """Send ``frame`` now or as the next one; True if it replaced a frame still waiting."""
        if self._pending is None and self.channel.writable():
            self._write(frame)
            return False
        replaced = self._pending is not None
        if replaced:
            self.frames_dropped += 1
        self._pending = frame
        self._wake.set()
        return replaced

    @property
    def pending_bytes(self) -> int:
        return self._pending.size if self._pending is not None else 0

    def request_ping(self) -> None:
        self._ping_due = True
        self._pinged = True
        self._pong = None
        self._wake.set()

    def missed_pong(self) -> bool:
        """Whether the last WebSocket ping is unanswered (or could not even be sent)."""
        return self._pinged and (self._pong is None or not self._pong.done())

    async def run_writer(self) -> None:
        """Send the ping and the newest waiting frame whenever the write buffer has drained."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._ping_due:
                self._ping_due = False
                await self.channel.drained()
                self._pong = await self.channel.ping()
            while self._pending is not None:
                await self.channel.drained()
                frame, self._pending = self._pending, None
                if frame is not None:
                    self._write(frame)

    def _write(self, frame: stream.RelayFrame) -> None:
        payload, text = frame.for_viewer(self.binary)
        self.channel.write(payload, text=text)
        self.frames_sent += 1
        self._stats.frames_relayed += 1


@dataclass(eq=False)
class StreamRoom:
    """Everyone whose ``roomId`` is ``room_id``, and the room's source if it has one."""

    room_id: str
    members: dict[StreamClient, None] = field(default_factory=dict)
    source: StreamClient | None = None
    frames_in: int = 0
    frames_dropped: int = 0

    @property
    def viewer_count(self) -> int:
        return len(self.members) - (self.source in self.members)


@dataclass(slots=True)
class StreamStats:
    """Totals of the hub since start (``/healthz``, ``/metrics``)."""

    frames_in: int = 0
    frames_relayed: int = 0
    """Frames written to viewers (one frame to ten viewers counts ten)."""
    frames_dropped: int = 0
    """Frames replaced in a viewer's slot before they could be sent."""
    frames_rate_limited: int = 0
    frames_rejected: int = 0
    messages_ignored: int = 0
    refused: int = 0
    """``register-source``/``join-room`` refused for lack of a room token (access control)."""


class StreamHub:
    """All ``/stream`` clients and rooms of one server."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = time.monotonic,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.settings = settings
        self.clients: dict[StreamClient, None] = {}
        self.rooms: dict[str, StreamRoom] = {}
        self.stats = StreamStats()
        self._clock = clock
        self._wall_ms = wall_ms
        self._buckets: dict[StreamClient, TokenBucket] = {}
        self._frames_since_tick = 0
        self._ticker: asyncio.Task[None] | None = None
        self.relay: FrameRelay | None = None

    # -- connections --------------------------------------------------------------------------

    def connect(
        self,
        peer: Peer,
        channel: FrameChannel,
        *,
        binary: bool = False,
        permissions: StreamPermissions | None = None,
    ) -> StreamClient:
        """Register a connection and greet it with ``info`` (protocols.md §3.3)."""
        client = StreamClient(
            peer, channel, binary=binary, stats=self.stats, permissions=permissions
        )
        # with access control on, the greeting never lists rooms (docs/threats.md A9)
        listed = self.settings.stream_list_rooms and permissions is None
        sources = self._active_sources() if listed else None
        peer.send(stream.encode_info(sources, len(self.clients)))
        self.clients[client] = None
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_forever(), name="stream keepalive")
        return client

    def disconnect(self, client: StreamClient) -> None:
        """Forget a closed connection; its room hears ``source-disconnected`` if it was one."""
        label = room_label(client.room.room_id) if client.room else "-"
        self._release_source(client)
        self._leave(client)
        self.clients.pop(client, None)
        self._buckets.pop(client, None)
        logger.info(
            "%s left stream room=%s sent=%d dropped=%d latency_ms=%s reported=%s",
            client.peer.id,
            label,
            client.frames_sent,
            client.frames_dropped,
            client.latency_ms,
            client.reported or "-",
            extra={
                "event": "stream.left",
                "conn": client.peer.id,
                "door": "stream",
                "room": label,
                "frames_sent": client.frames_sent,
                "frames_dropped": client.frames_dropped,
                "latency_ms": client.latency_ms,
            },
        )
        if not self.clients and self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    # -- messages -----------------------------------------------------------------------------

    def receive(self, client: StreamClient, message: str | bytes) -> None:
        """Handle one message from ``client``; bad ones are answered or ignored, never fatal."""
        if client.source_of is None and len(message) > stream.MAX_CONTROL_MESSAGE:
            self.stats.messages_ignored += 1  # only a source's frames are this big: not parsed
            return
        max_room_id = self.settings.stream_max_room_id
        decoded = stream.decode_stream_message(message, max_room_id=max_room_id)
        if isinstance(decoded, stream.Frame):
            self._frame(client, decoded.frame)
        elif isinstance(decoded, stream.RegisterSource):
            self._register(client, decoded.room_id)
        elif isinstance(decoded, stream.JoinRoom):
            self._join(client, decoded)
        elif isinstance(decoded, stream.Ping):
            client.peer.send(stream.encode_pong(self._wall_ms(), decoded.client_timestamp))
        elif isinstance(decoded, stream.PongResponse):
            client.latency_ms = max(0.0, (self._wall_ms() - decoded.server_timestamp) / 2)
        elif isinstance(decoded, stream.Stats):
            client.reported.update(decoded.values)
        elif isinstance(decoded, stream.Rejected):
            if decoded.bad_frame:
                self.stats.frames_rejected += 1
            client.peer.send(stream.encode_error(decoded.message))
        else:
            self.stats.messages_ignored += 1

    def _register(self, client: StreamClient, room_id: str) -> None:
        if client.permissions is not None and not client.permissions.may_source(room_id):
            self._refuse(client, room_id)
            return
        if self.relay is not None:
            self.relay.claim_source(client, room_id)  # calls become_source if it may
        else:
            self.become_source(client, room_id)

    def become_source(self, client: StreamClient, room_id: str) -> bool:
        """Make ``client`` the room's source unless a live one exists; False if not."""
        if client not in self.clients:
            return False
        room = self.rooms.get(room_id)
        if room is not None and room.source is not None and room.source is not client:
            if room.source.channel.is_open:
                client.peer.send(stream.encode_error(stream.room_has_source(room_id)))
                return False
            room.source = None  # a dead source is replaced (§3.2)
        self._release_source(client)
        room = self._move(client, room_id)
        room.source = client
        client.source_of = room
        fps = self.settings.stream_max_source_fps
        self._buckets[client] = TokenBucket(fps, max(fps, 1.0), self._clock())
        label = room_label(room_id)
        logger.info(
            "%s is the stream source of room %s",
            client.peer.id,
            label,
            extra={
                "event": "stream.source",
                "conn": client.peer.id,
                "door": "stream",
                "room": label,
            },
        )
        client.peer.send(stream.encode_source_registered(room_id))
        self._tell_room(room, stream.encode_source_available(room_id), but=client)
        return True

    def _refuse(self, client: StreamClient, room_id: str) -> None:
        """No token for this room (or no ``source`` token to be its source): say so."""
        self.stats.refused += 1
        client.peer.send(stream.encode_error(stream.not_authorized(room_id)))

    def _join(self, client: StreamClient, join: stream.JoinRoom) -> None:
        if client.permissions is not None and not client.permissions.may_view(join.room_id):
            self._refuse(client, join.room_id)
            return
        room = self.rooms.get(join.room_id)
        if (
            room is not None
            and client not in room.members
            and room.viewer_count >= self.settings.stream_max_viewers
        ):
            client.peer.send(stream.encode_error(stream.room_is_full(join.room_id)))
            return
        if join.binary is not None:
            client.binary = join.binary
        room = self._move(client, join.room_id)
        source = room.source
        if source is not None and source is not client:
            if source.channel.is_open:
                client.peer.send(stream.encode_source_available(join.room_id))
            else:
                room.source = None  # dropped silently, as the Node relay does
        if room.source is None and self.relay is not None:
            self.relay.joined(client, join.room_id)

    def _frame(self, client: StreamClient, frame: stream.RelayFrame) -> None:
        room = client.source_of
        if room is None or room.source is not client:
            self.stats.messages_ignored += 1  # frames from non-sources are ignored (§3.2)
            return
        if not self._buckets[client].take(self._clock()):
            self.stats.frames_rate_limited += 1
            return
        self.stats.frames_in += 1
        room.frames_in += 1
        self._frames_since_tick += 1
        self._offer(room, frame, but=client)
        if self.relay is not None:
            self.relay.frame(room.room_id, frame)

    def _offer(self, room: StreamRoom, frame: stream.RelayFrame, but: StreamClient | None) -> None:
        for viewer in room.members:
            if viewer is not but and viewer.offer(frame):
                room.frames_dropped += 1
                self.stats.frames_dropped += 1

    # -- what the relay brings from other nodes -----------------------------------------------

    def deliver_frame(self, room_id: str, frame: stream.RelayFrame) -> None:
        """A frame of the room's source on another node, for this node's viewers."""
        room = self.rooms.get(room_id)
        if room is not None and room.source is None:
            room.frames_in += 1
            self._offer(room, frame, but=None)

    def remote_source(self, room_id: str, available: bool) -> None:
        """The room's source on another node came or went."""
        room = self.rooms.get(room_id)
        if room is None or room.source is not None:
            return
        encode = stream.encode_source_available if available else stream.encode_source_disconnected
        self._tell_room(room, encode(room_id), but=None)

    # -- membership ---------------------------------------------------------------------------

    def _move(self, client: StreamClient, room_id: str) -> StreamRoom:
        """Make ``room_id`` the client's room (re-joining the same room changes nothing)."""
        current = client.room
        if current is not None and current.room_id == room_id:
            return current
        self._leave(client)
        room = self.rooms.get(room_id)
        if room is None:
            room = self.rooms[room_id] = StreamRoom(room_id)
            if self.relay is not None:
                self.relay.opened(room_id)
        room.members[client] = None
        client.room = room
        return room

    def _leave(self, client: StreamClient) -> None:
        room = client.room
        if room is None:
            return
        room.members.pop(client, None)
        client.room = None
        self._forget_if_empty(room)

    def _release_source(self, client: StreamClient) -> None:
        room = client.source_of
        if room is None:
            return
        client.source_of = None
        self._buckets.pop(client, None)
        if room.source is client:
            room.source = None
            label = room_label(room.room_id)
            logger.info(
                "%s no longer the stream source of room %s",
                client.peer.id,
                label,
                extra={
                    "event": "stream.source_gone",
                    "conn": client.peer.id,
                    "door": "stream",
                    "room": label,
                },
            )
            self._tell_room(room, stream.encode_source_disconnected(room.room_id), but=client)
            if self.relay is not None:
                self.relay.source_released(room.room_id)
        self._forget_if_empty(room)

    def _forget_if_empty(self, room: StreamRoom) -> None:
        if room.members or room.source is not None:
            return
        if self.rooms.pop(room.room_id, None) is not None and self.relay is not None:
            self.relay.closed(room.room_id)

    def _tell_room(self, room: StreamRoom, text: str, *, but: StreamClient | None) -> None:
        for member in room.members:
            if member is not but:
                member.peer.send(text)

    def _active_sources(self) -> list[str]:
        return [room_id for room_id, room in self.rooms.items() if room.source is not None]

    # -- keep-alive ---------------------------------------------------------------------------

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.stream_ping_interval)
            self.tick()

    def tick(self) -> None:
        """Drop clients that missed the last WebSocket ping; ping everyone else (§3.3)."""
        fps = self._frames_since_tick / self.settings.stream_ping_interval
        self._frames_since_tick = 0
        now = self._wall_ms()
        for client in list(self.clients):
            if client.missed_pong():
                logger.info(
                    "%s stream client missed a ping, dropping it",
                    client.peer.id,
                    extra={
                        "event": "stream.ping_timeout",
                        "conn": client.peer.id,
                        "door": "stream",
                    },
                )
                client.channel.abort()
                continue
            ping = stream.encode_ping(
                now, clients=len(self.clients), fps=fps, dropped=client.frames_dropped
            )
            client.peer.send(ping)
            client.request_ping()

    # -- reporting ----------------------------------------------------------------------------

    @property
    def connection_count(self) -> int:
        return len(self.clients)

    def buffered_bytes(self) -> int:
        """Bytes the server holds for stream clients: write buffers plus waiting frames."""
        return sum(c.channel.buffered() + c.pending_bytes for c in self.clients)

    def summary(self) -> dict[str, int]:
        """Counters for ``/healthz``."""
        return {
            "rooms": len(self.rooms),
            "sources": sum(room.source is not None for room in self.rooms.values()),
            "frames_in": self.stats.frames_in,
            "frames_dropped": self.stats.frames_dropped,
            "frames_rate_limited": self.stats.frames_rate_limited,
            "refused": self.stats.refused,
            "buffered_bytes": self.buffered_bytes(),
        }


__all__ = [
    "FrameChannel",
    "FrameRelay",
    "StreamClient",
    "StreamHub",
    "StreamPermissions",
    "StreamRoom",
    "StreamStats",
]
