"""The Yjs and signaling doors: what an open connection's messages go to.

A door is the per-connection glue between a :class:`~edrys_relay.server.connection.Connection`
and its hub: it applies the door's checks (``server/guard.py``) and hands each message on, and
it releases the connection's place in the hub when the connection ends. The ``/stream`` door
lives in ``server/stream_door.py``.
"""

from __future__ import annotations

import time

from edrys_relay.config import Settings
from edrys_relay.protocol.errors import UnsupportedData
from edrys_relay.server.connection import Connection
from edrys_relay.server.guard import FrameRate, YjsGuard
from edrys_relay.server.limits import AwarenessOwners, SecurityStats
from edrys_relay.server.rooms import Room, RoomHub
from edrys_relay.server.topics import TopicHub


class YjsDoor:
    """A connection to one room (protocols.md §2): every binary frame goes through its guard."""

    __slots__ = ("_connection", "_guard", "_hub", "_owners", "_room")

    def __init__(
        self,
        connection: Connection,
        room: Room,
        hub: RoomHub,
        *,
        read_only: bool,
        settings: Settings,
        owners: AwarenessOwners,
        stats: SecurityStats,
    ) -> None:
        self._connection = connection
        self._room = room
        self._hub = hub
        self._owners = owners
        self._guard = YjsGuard(
            room=room,
            peer_id=connection.id,
            read_only=read_only,
            settings=settings,
            owners=owners,
            stats=stats,
            notify=connection.send,
        )

    def receive(self, message: str | bytes) -> None:
        if isinstance(message, str):
            raise UnsupportedData("text frame on the Yjs door")
        checked = self._guard.check(message)
        if checked is not None:
            self._room.receive(self._connection, checked)

    def closed(self) -> None:
        self._hub.leave(self._room, self._connection)
        self._owners.release(self._room.name, self._connection.id)


class SignalingDoor:
    """A y-webrtc signaling connection (protocols.md §4): text frames to the topic hub."""

    __slots__ = ("_connection", "_hub", "_max_topic", "_rate")

    def __init__(
        self,
        connection: Connection,
        hub: TopicHub,
        *,
        allowed: frozenset[str] | None,
        settings: Settings,
        stats: SecurityStats,
    ) -> None:
        self._connection = connection
        self._hub = hub
        self._max_topic = settings.max_topic_length
        self._rate = FrameRate(settings, stats, time.monotonic)
        hub.connect(connection, allowed)

    def receive(self, message: str | bytes) -> None:
        self._rate.check()
        if not isinstance(message, str):
            raise UnsupportedData("binary frame on the signaling door")
        self._hub.receive(self._connection, message, max_topic_length=self._max_topic)

    def closed(self) -> None:
        self._hub.disconnect(self._connection)


__all__ = ["SignalingDoor", "YjsDoor"]
