"""Yjs rooms behind the y-websocket door (protocols.md §2.3), durable (design.md "Durability").

A room keeps a pycrdt document used only to validate updates, its committed history (a merged
record plus the writers' original updates, protocols.md §2.9, ``protocol/history.py``) and the
awareness states of its clients.

Durability contract: an update is relayed to the other connections only after the room bus
(``server/bus.py``: the local store writer, or Redis) says it may be delivered, i.e. it is
durable, so whatever any client has seen survives ``kill -9``. Each room keeps an outbox
in arrival order: a validated update waits there for its commit, and a sync step 1 or an
awareness change that arrives behind it waits too, so answers cover every earlier update and
clients see messages in the order they were sent. Awareness is not stored; a change goes through
the bus to all connections including the sender, which also keeps lone clients from hitting
their 30 s silence timeout.

Rooms load lazily on the first join (records read and replayed in threads), merge their
history once it grows past ``compact_updates``/``compact_bytes`` and when they unload after
``room_idle_seconds`` empty.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from edrys_relay.config import Settings
from edrys_relay.protocol import yjs, yupdate
from edrys_relay.protocol.awareness import (
    AwarenessChange,
    AwarenessEntry,
    AwarenessStates,
    decode_awareness_update,
    encode_awareness_update,
)
from edrys_relay.protocol.errors import ProtocolError
from edrys_relay.protocol.history import RoomHistory
from edrys_relay.protocol.routing import RoomName
from edrys_relay.protocol.ydoc import TrackedDoc, check_update, replay
from edrys_relay.security.redaction import room_label
from edrys_relay.server.bus import RoomBus
from edrys_relay.server.peer import Peer
from edrys_relay.storage.base import Record

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

STORAGE_BUSY = 1013
"""Close code when updates wait too long for storage: "try again later" (RFC 6455 §7.4.1)."""


@dataclass(slots=True)
class RoomStats:
    """Totals of every room of a hub since start (``/metrics``), kept across unloads."""

    updates_applied: int = 0
    updates_ignored: int = 0
    """Updates that changed nothing (duplicates, empty step 2 answers)."""
    messages_ignored: int = 0
    storage_busy: int = 0
    """Senders closed with 1013 because the storage backlog was full."""


REMOTE_AWARENESS_ENTRIES = 4096
"""Entries in one awareness update from another node (its answer lists all its clients)."""


@dataclass(slots=True)
class _PendingUpdate:
    sender: Peer | None
    update: bytes
    frame: bytes | None
    seq: int | None = None


@dataclass(slots=True)
class _PendingAnswer:
    peer: Peer
    state_vector: bytes


@dataclass(slots=True)
class _PendingBroadcast:
    message: bytes


class Room:
    """One document, its committed history, its connections and its awareness."""

    def __init__(
        self,
        name: RoomName,
        settings: Settings,
        clock: Clock,
        *,
        bus: RoomBus,
        doc: TrackedDoc,
        history: RoomHistory,
        on_commit: Callable[[Room], None],
        stats: RoomStats,
    ) -> None:
        self.name = name
        self.label = room_label(name)
        """The room's name in log lines (docs/operations.md "Redaction")."""
        self._settings = settings
        self._clock = clock
        self._bus = bus
        self._doc = doc
        self.history = history
        self._on_commit = on_commit
        self._outbox: deque[_PendingUpdate | _PendingAnswer | _PendingBroadcast] = deque()
        self.awareness = AwarenessStates()
        self.peers: dict[Peer, set[int]] = {}
        self.empty_since: float | None = clock()
        self.stats = stats
        self.compaction_failed = False

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
            self._bus.announce(self, encode_awareness_update(removals))
        if not self.peers:
            self.empty_since = self._clock()

    def close(self) -> None:
        """Release the document; the room is unusable afterwards."""
        self._doc.close()

    @property
    def idle(self) -> bool:
        """No connection and nothing waiting for storage."""
        return not self.peers and not self._outbox

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
            yupdate.decode_state_vector(message.state_vector)  # refuse a bad one now
            self._outbox.append(_PendingAnswer(peer, message.state_vector))
            self._drain()
        elif isinstance(message, yjs.SyncStep2):
            self._apply(peer, message.update, None)
        elif isinstance(message, yjs.QueryAwareness):
            peer.send(yjs.encode_awareness(encode_awareness_update(self.awareness.snapshot())))
        else:
            self.stats.messages_ignored += 1

    def _apply(self, sender: Peer, update: bytes, frame: bytes | None) -> None:
        if self._bus.backlog_bytes > self._settings.store_backlog_max:
            self.stats.storage_busy += 1
            logger.warning(
                "%s room=%s storage backlog full, closing",
                sender.id,
                self.label,
                extra={
                    "event": "room.storage_busy",
                    "conn": sender.id,
                    "room": self.label,
                    "code": STORAGE_BUSY,
                },
            )
            sender.close(STORAGE_BUSY, "storage busy")
            return
        # Validate before persisting (docs/threats.md V17): a poison update never reaches storage.
        # The empty update (every joining client's step 2 when it has nothing new) changes
        # nothing and needs no parse.
        if update == yjs.EMPTY_UPDATE or not check_update(self._doc, update):
            self.stats.updates_ignored += 1
            return
        self.stats.updates_applied += 1
        pending = _PendingUpdate(sender, update, frame)
        self._outbox.append(pending)
        self._bus.append(self.name, update, lambda seq: self._committed(pending, seq))

    def _committed(self, pending: _PendingUpdate, seq: int) -> None:
        pending.seq = seq
        self._drain()
        self._on_commit(self)

    def _drain(self) -> None:
        """Act on the outbox in arrival order, up to the first update not yet committed."""
        outbox = self._outbox
        while outbox:
            head = outbox[0]
            if isinstance(head, _PendingAnswer):
                outbox.popleft()
                self._answer_step1(head)
            elif isinstance(head, _PendingBroadcast):
                outbox.popleft()
                self._send_all(head.message)
            elif head.seq is not None:
                outbox.popleft()
                self.history.add(Record(head.seq, head.update))
                self._relay(head)
            else:
                return
        if not self.peers:
            self.empty_since = self._clock()

    def _answer_step1(self, answer: _PendingAnswer) -> None:
        if answer.peer not in self.peers:
            return
        for message in self.history.sync_answer(answer.state_vector):
            answer.peer.send(message)

    def _relay(self, pending: _PendingUpdate) -> None:
        message = pending.frame or yjs.encode_sync_update(pending.update)
        for peer in list(self.peers):
            if peer is not pending.sender:
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
        self._bus.announce(self, encode_awareness_update(change.entries))

    def send_awareness(self, update: bytes) -> None:
        """Send an awareness update to every connection, in order behind pending updates."""
        self._broadcast(yjs.encode_awareness(update))

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
        # Behind updates still waiting for their commit, so clients see messages in arrival
        # order (an awareness state often names content of the update sent just before it).
        if self._outbox:
            self._outbox.append(_PendingBroadcast(message))
        else:
            self._send_all(message)

    def _send_all(self, message: bytes) -> None:
        # Encode once, write the same bytes to every connection (design.md "hot path").
        for peer in list(self.peers):
            peer.send(message)

    # -- what a bus shared with other processes delivers -------------------------------------

    def deliver(self, seq: int, update: bytes) -> None:
        """An update another process appended, already durable: apply, keep and relay it."""
        try:
            changed = check_update(self._doc, update)
        except ProtocolError as exc:
            logger.error(
                "room %s: refused update %d from the bus: %s",
                self.label,
                seq,
                exc,
                extra={"event": "room.bus_update_refused", "room": self.label},
            )
            return
        if changed:
            self._outbox.append(_PendingUpdate(None, update, None, seq))
            self._drain()

    def catch_up(self, seq: int, merged: yupdate.ParsedUpdate) -> None:
        """Take a merged record made elsewhere that covers every record up to ``seq``.

        Whatever it holds that this process has not seen (records trimmed before they were
        read) is delivered first, so no connection misses content.
        """
        missing = yupdate.diff_update(merged, self._doc.state_vector())
        if missing != yupdate.EMPTY_UPDATE:
            self.deliver(seq, missing)
        self.history.compacted_through(seq, merged)

    def hear_awareness(self, update: bytes) -> AwarenessChange:
        """Awareness changes from another process: apply them, tell this process's clients."""
        entries = decode_awareness_update(
            update,
            max_entries=REMOTE_AWARENESS_ENTRIES,
            max_state_bytes=self._settings.max_awareness_state,
        )
        change = self.awareness.apply(entries, self._clock())
        if change:
            self.send_awareness(encode_awareness_update(change.entries))
        return change

    def drop_awareness(self, client_ids: set[int]) -> None:
        """Remove states another process spoke for (it is gone) and tell this process's clients."""
        removals = self.awareness.remove(client_ids)
        if removals:
            self.send_awareness(encode_awareness_update(removals))

    def local_awareness(self) -> bytes | None:
        """The states this process's connections control, as one awareness update."""
        controlled = set().union(*self.peers.values())
        entries = [e for e in self.awareness.snapshot() if e.client_id in controlled]
        return encode_awareness_update(entries) if entries else None

    @property
    def update_count(self) -> int:
        """Committed records (a merged record counts as one)."""
        return self.history.record_count

    @property
    def log_bytes(self) -> int:
        return self.history.size_bytes


def _restore(records: list[Record]) -> tuple[TrackedDoc, RoomHistory, list[Record]]:
    """Replay stored records and index the merged one (CPU-bound: runs in a thread)."""
    doc, good, bad = replay(records)
    return doc, RoomHistory(good), bad


class RoomHub:
    """All loaded rooms: loaded on first join, unloaded after being empty for a while."""

    def __init__(self, settings: Settings, bus: RoomBus, clock: Clock = time.monotonic):
        self.settings = settings
        self.bus = bus
        self.clock = clock
        self.rooms: dict[RoomName, Room] = {}
        self.stats = RoomStats()
        self._loading: dict[RoomName, asyncio.Task[Room]] = {}
        self._compactions: dict[RoomName, asyncio.Task[None]] = {}
        self._unloading: set[RoomName] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    def join_loaded(self, name: RoomName, peer: Peer) -> Room | None:
        """Add ``peer`` to the room if it is loaded (no wait), else return None."""
        room = self.rooms.get(name)
        if room is not None:
            room.join(peer)
        return room

    async def join(self, name: RoomName, peer: Peer) -> Room:
        """Add ``peer`` to the room, loading the room first if needed.

        Raises:
            StoreError: the room's history cannot be read.
        """
        room = self.rooms.get(name)
        if room is None:
            loading = self._loading.get(name)
            if loading is None:
                loading = self._loading[name] = asyncio.create_task(self._load(name))
                loading.add_done_callback(lambda _: self._loading.pop(name, None))
                # A load that fails is not cached: the next join tries again.
            room = await asyncio.shield(loading)
        room.join(peer)
        return room

    async def _load(self, name: RoomName) -> Room:
        records = await self.bus.load(name)
        doc, room_history, bad = await asyncio.to_thread(_restore, records)
        if bad:
            seqs = [record.seq for record in bad][:20]
            logger.error(
                "room %s: %d stored records are not valid Yjs updates; quarantined (seqs %s)",
                room_label(name),
                len(bad),
                seqs,
                extra={"event": "room.quarantined", "room": room_label(name), "seqs": seqs},
            )
            await self.bus.quarantine(name, [r.seq for r in bad], "refused on load")
        room = Room(
            name,
            self.settings,
            self.clock,
            bus=self.bus,
            doc=doc,
            history=room_history,
            on_commit=self._after_commit,
            stats=self.stats,
        )
        if self._too_long(room_history):
            # A long history from an import or an older run is merged before anyone is
            # served: answering with thousands of raw records would stall the event loop.
            await self.bus.compact(room)
        self.rooms[name] = room
        self.bus.opened(room)
        logger.info(
            "room %s loaded (%d records, %d bytes)",
            room.label,
            len(records),
            room_history.size_bytes,
            extra={
                "event": "room.loaded",
                "room": room.label,
                "records": len(records),
                "bytes": room_history.size_bytes,
            },
        )
        return room

    def leave(self, room: Room, peer: Peer) -> None:
        room.leave(peer)

    # -- compaction ---------------------------------------------------------------------------

    def _too_long(self, h: RoomHistory) -> bool:
        s = self.settings
        return h.tail_count >= s.compact_updates or h.tail_bytes >= s.compact_bytes

    def _after_commit(self, room: Room) -> None:
        if self._too_long(room.history):
            self._spawn_compaction(room)

    def _spawn_compaction(self, room: Room) -> asyncio.Task[None]:
        running = self._compactions.get(room.name)
        # A finished task may still be registered: its done callback runs a loop turn later.
        if running is None or running.done():
            running = self._compactions[room.name] = self._spawn(self.bus.compact(room))
            running.add_done_callback(lambda done: self._forget_compaction(room.name, done))
        return running

    def _forget_compaction(self, name: RoomName, task: asyncio.Task[None]) -> None:
        if self._compactions.get(name) is task:
            del self._compactions[name]

    async def compact(self, room: Room) -> None:
        """Merge the room's committed history into one record (joins a running merge first)."""
        running = self._compactions.get(room.name)
        if running is not None:
            await asyncio.shield(running)
        await asyncio.shield(self._spawn_compaction(room))

    # -- housekeeping -------------------------------------------------------------------------

    def sweep(self) -> None:
        """Expire stale awareness states and unload rooms idle past the grace period."""
        now = self.clock()
        for name, room in list(self.rooms.items()):
            room.expire_awareness(now)
            if (
                room.idle
                and room.empty_since is not None
                and now - room.empty_since >= self.settings.room_idle_seconds
                and name not in self._unloading
            ):
                self._unloading.add(name)
                self._spawn(self._unload(room))

    async def _unload(self, room: Room) -> None:
        try:
            await self.compact(room)
        finally:
            self._unloading.discard(room.name)
        if room.idle and self.rooms.get(room.name) is room:
            del self.rooms[room.name]
            self.bus.closed(room)
            room.close()
            logger.info(
                "room %s unloaded (%d records, %d bytes)",
                room.label,
                room.update_count,
                room.log_bytes,
                extra={
                    "event": "room.unloaded",
                    "room": room.label,
                    "records": room.update_count,
                    "bytes": room.log_bytes,
                },
            )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def flush(self) -> None:
        """Wait until every update received so far is committed (and relayed)."""
        await self.bus.flush()

    async def aclose(self) -> None:
        """Stop merging and unloading (a merge in flight is atomic), then flush."""
        for task in list(self._tasks) + list(self._loading.values()):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._loading.values(), return_exceptions=True)
        await self.flush()

    @property
    def connection_count(self) -> int:
        return sum(len(room.peers) for room in self.rooms.values())


__all__ = ["STORAGE_BUSY", "Room", "RoomHub", "RoomStats"]
