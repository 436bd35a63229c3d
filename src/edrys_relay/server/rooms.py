"""Yjs rooms behind the y-websocket door (protocols.md §2.3).

A room keeps the writers' original update bytes (a raw log, served as updates followed by an
empty sync step 2, protocols.md §2.9), a pycrdt document used only to validate updates, and
the awareness states of its clients. Every accepted update is relayed as the received bytes to
every connection of the room; awareness changes are echoed to all connections including the
sender, which also keeps lone clients from hitting their 30 s silence timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edrys_relay.config import Settings
from edrys_relay.protocol import yjs
from edrys_relay.protocol.awareness import (
    AwarenessEntry,
    AwarenessStates,
    decode_awareness_update,
    encode_awareness_update,
)
from edrys_relay.protocol.routing import RoomName
from edrys_relay.server.peer import Peer
from edrys_relay.server.ydoc import TrackedDoc

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(slots=True)
class RoomStats:
    updates_applied: int = 0
    updates_ignored: int = 0
    messages_ignored: int = 0


class Room:
    """One document, its connections and its awareness."""

    def __init__(self, name: RoomName, settings: Settings, clock: Clock) -> None:
        self.name = name
        self._settings = settings
        self._clock = clock
        self._doc = TrackedDoc()
        self._log: list[bytes] = []
        self.log_bytes = 0
        self.awareness = AwarenessStates()
        self.peers: dict[Peer, set[int]] = {}
        self.empty_since: float | None = clock()
        self.stats = RoomStats()

    # -- membership ---------------------------------------------------------------------------

    def join(self, peer: Peer) -> None:
        """Register a connection and greet it: sync step 1, then all awareness states."""
        self.peers[peer] = set()
        self.empty_since = None
        peer.send(yjs.encode_sync_step1(self._doc.state_vector()))
        if len(self.awareness):
            update = encode_awareness_update(self.awareness.snapshot())
            peer.send(yjs.encode_awareness(update))

    def leave(self, peer: Peer) -> None:
        """Unregister a connection and broadcast the removal of the client IDs it controlled."""
        controlled = self.peers.pop(peer, set())
        removals = self.awareness.remove(controlled)
        if removals:
            self._broadcast(yjs.encode_awareness(encode_awareness_update(removals)))
        if not self.peers:
            self.empty_since = self._clock()

    # -- messages -----------------------------------------------------------------------------

    def receive(self, peer: Peer, frame: bytes) -> None:
        """Handle one binary frame from ``peer``.

        Raises:
            ProtocolError: the frame or its content is invalid; nothing of it was applied.
        """
        message = yjs.decode_message(frame)
        if isinstance(message, yjs.SyncUpdate):
            self._apply(peer, message.update, frame)
        elif isinstance(message, yjs.AwarenessMessage):
            self._apply_awareness(peer, message.update)
        elif isinstance(message, yjs.SyncStep1):
            self._answer_step1(peer)
        elif isinstance(message, yjs.SyncStep2):
            self._apply(peer, message.update, None)
        elif isinstance(message, yjs.QueryAwareness):
            peer.send(yjs.encode_awareness(encode_awareness_update(self.awareness.snapshot())))
        else:
            self.stats.messages_ignored += 1

    def _answer_step1(self, peer: Peer) -> None:
        # protocols.md §2.9 strategy (a): the original updates, then an empty step 2, on which
        # the client marks itself synced after all content has been applied.
        for update in self._log:
            peer.send(yjs.encode_sync_update(update))
        peer.send(yjs.encode_sync_step2(yjs.EMPTY_UPDATE))

    def _apply(self, sender: Peer, update: bytes, frame: bytes | None) -> None:
        if not self._doc.apply(update):
            self.stats.updates_ignored += 1
            return
        self._log.append(update)
        self.log_bytes += len(update)
        self.stats.updates_applied += 1
        message = frame if frame is not None else yjs.encode_sync_update(update)
        for peer in list(self.peers):
            if peer is not sender:
                peer.send(message)

    def _apply_awareness(self, peer: Peer, update: bytes) -> None:
        entries = decode_awareness_update(
            update,
            max_entries=self._settings.max_awareness_entries,
            max_state_bytes=self._settings.max_awareness_state,
        )
        change = self.awareness.apply(entries, self._clock())
        if not change:
            return
        controlled = self.peers.get(peer)
        if controlled is not None:
            controlled.update(change.added)
            controlled.difference_update(change.removed)
        self._broadcast(yjs.encode_awareness(encode_awareness_update(change.entries)))

    def expire_awareness(self, now: float) -> None:
        removals = self.awareness.expire(now, self._settings.awareness_timeout)
        if removals:
            self._forget_controlled(removals)
            self._broadcast(yjs.encode_awareness(encode_awareness_update(removals)))

    def _forget_controlled(self, removals: list[AwarenessEntry]) -> None:
        gone = {entry.client_id for entry in removals}
        for controlled in self.peers.values():
            controlled.difference_update(gone)

    def _broadcast(self, message: bytes) -> None:
        # Encode once, write the same bytes to every connection (design.md "hot path").
        for peer in list(self.peers):
            peer.send(message)

    @property
    def update_count(self) -> int:
        return len(self._log)


@dataclass
class RoomHub:
    """All loaded rooms: created on first join, unloaded after being empty for a while."""

    settings: Settings
    clock: Clock = time.monotonic
    rooms: dict[RoomName, Room] = field(default_factory=dict)

    def join(self, name: RoomName, peer: Peer) -> Room:
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = Room(name, self.settings, self.clock)
            logger.info("room %s loaded", name)
        room.join(peer)
        return room

    def leave(self, room: Room, peer: Peer) -> None:
        room.leave(peer)

    def sweep(self) -> None:
        """Expire stale awareness states and unload rooms idle past the grace period."""
        now = self.clock()
        for name, room in list(self.rooms.items()):
            room.expire_awareness(now)
            if room.empty_since is not None and now - room.empty_since >= (
                self.settings.room_idle_seconds
            ):
                del self.rooms[name]
                logger.info(
                    "room %s unloaded after %.0f s empty (%d updates, %d bytes)",
                    name,
                    now - room.empty_since,
                    room.update_count,
                    room.log_bytes,
                )

    @property
    def connection_count(self) -> int:
        return sum(len(room.peers) for room in self.rooms.values())


__all__ = ["Room", "RoomHub", "RoomStats"]
