"""The server as a y-webrtc peer: one room across both modes (``serve --bridge-webrtc``).

Off by default. When on, the server joins every signaling topic it can decrypt as one ordinary
y-webrtc peer, and the document it holds there is the :class:`~edrys_relay.server.rooms.Room`
the y-websocket door serves under the same name (in Edrys-Lite the topic, the Yjs document and
the y-websocket room are one name, protocols.md §5.1). The WebRTC part is the Python client's
:class:`~edrys_relay.client.webrtc_links.PeerLinks`; the signaling goes straight into the
server's own :class:`~edrys_relay.server.topics.TopicHub`.

How a WebRTC peer maps onto a room: each data channel is a :class:`Peer` of the room, like a
WebSocket connection. Its messages pass a :class:`~edrys_relay.server.guard.YjsGuard` (frame
rate, read-only, document size, awareness ownership) into ``Room.receive``, so validation,
storage before relay, byte fidelity and limits are the WebSocket door's; the room sends it what
it sends a connection (greeting, step-2 answers from the stored history, others' committed
updates, awareness). Awareness differs in one way: a y-webrtc peer passes on every state it
knows, and a closed channel does not remove a state (it expires after 30 s, §4.6). So the
awareness of all of a room's channels goes in through one more room member, the room's mesh,
which owns those states until the room's last channel closes.

Discovery: the hub shows the bridge every publish. The first one on a topic it does not hold
is probed: plaintext data (a room without password) or base64 that one of
``bridge_passwords`` decrypts (PBKDF2 in a thread, paced to :data:`PROBES_PER_SECOND`). Then
the bridge subscribes a signaling member of its own to the topic and announces itself; the
peers there offer to it (whoever receives an announce makes the offer, §4.4), and it offers to
those who announce later. Topics that do not decrypt are left alone while they exist.

Bounds: ``bridge_max_peers_per_room`` and ``bridge_max_peers`` peer connections (negotiating
or open). Over either, announces and offers are ignored: those peers stay with plain
signaling, peer to peer, as without the bridge (one warning per room each time).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edrys_relay.client.options import ClientOptions
from edrys_relay.client.webrtc_links import Link, PeerLinks
from edrys_relay.config import Settings
from edrys_relay.protocol import yjs
from edrys_relay.protocol.awareness import decode_awareness_update, encode_awareness_update
from edrys_relay.protocol.edrys_identity import Identity
from edrys_relay.protocol.errors import PolicyViolation, ProtocolError
from edrys_relay.protocol.lib0 import Decoder
from edrys_relay.protocol.routing import RoomName, room_for_topic
from edrys_relay.protocol.signaling import Publish
from edrys_relay.protocol.webrtc_crypto import decrypt, derive_key, encrypt
from edrys_relay.protocol.webrtc_peers import Action, Connect, PeerTable
from edrys_relay.security.redaction import room_label
from edrys_relay.server.guard import YjsGuard
from edrys_relay.server.limits import AwarenessOwners, SecurityStats
from edrys_relay.server.peer import Peer
from edrys_relay.server.rooms import Room, RoomHub
from edrys_relay.server.topics import TopicHub
from edrys_relay.storage.base import StoreError

logger = logging.getLogger(__name__)

PROBES_PER_SECOND = 4.0
"""Key derivations per second for unknown topics (one PBKDF2 is ~25 ms of CPU)."""
MAX_PROBES_WAITING = 256
"""Topics waiting for a probe; the first publishes of further topics are not probed."""
MAX_SIGNALS_WAITING = 256
"""Signaling actions queued per bridged room; beyond, signals are dropped (peers retry)."""
MAX_MESSAGES_WHILE_LOADING = 64
"""Messages a channel may send before its room has loaded; more close the channel."""
MAX_MESH_AWARENESS_ENTRIES = 1024
"""Entries in one awareness update from a channel (a y-webrtc peer sends every state it
knows); they reach the room in batches of ``max_awareness_entries``."""

CanWrite = Callable[[Peer, str], bool]
"""Whether the signaling connection ``peer`` may write to room ``topic``."""

_ids = itertools.count(1)


class _Member:
    """A room member with nothing to receive: its messages are already delivered otherwise."""

    def __init__(self, name: str) -> None:
        self.id = f"{name}{next(_ids)}"

    def send(self, data: bytes | str) -> None:
        pass

    def close(self, code: int, reason: str) -> None:
        pass


class _SignalingMember(_Member):
    """The bridge's subscription to one topic (what the hub sends it was seen as published)."""


class _ChannelPeer:
    """One data channel as a Peer of its room."""

    def __init__(self, links: PeerLinks, link: Link) -> None:
        self.id = f"rtc{next(_ids)}"
        self.link = link
        self._links = links
        self.room: Room | None = None
        self.guard: YjsGuard | None = None
        self.waiting: list[bytes] = []
        """Messages that arrived before the room was joined."""

    def send(self, data: bytes | str) -> None:
        if isinstance(data, bytes) and not self.link.closed:
            self._links.send(self.link, data)

    def close(self, code: int, reason: str) -> None:
        logger.info("%s closing (%s %s)", self.id, code, reason)
        self._links.spawn_drop(self.link)


@dataclass
class BridgeStats:
    """Reported under ``bridge`` in ``/healthz``."""

    peers_refused: int = 0
    """Announces and offers ignored because a limit was reached."""
    topics_left_alone: int = 0
    """Topics whose signaling none of the passwords decrypts (or that name no room)."""
    probes_skipped: int = 0


class BridgedRoom:
    """The bridge's y-webrtc peer in one room: signaling, channels and their room members."""

    def __init__(self, bridge: Bridge, name: RoomName, key: bytes | None) -> None:
        self.bridge = bridge
        self.name = name
        self.key = key
        settings = bridge.settings
        self.signaling = _SignalingMember("rtc-signaling")
        self.mesh = _Member("rtc-mesh")
        # one over the limit, so that admits() sees (and logs) the announce that exceeds it
        self.table = PeerTable(str(uuid.uuid4()), settings.bridge_max_peers_per_room + 1)
        self.links = PeerLinks(
            name,
            self.table,
            bridge.options,
            self,
            self,
            framing=None,
            identity=bridge.identity,
        )
        self.channels: dict[Link, _ChannelPeer] = {}
        self.read_only: dict[str, bool] = {}
        self.limited = False
        self._actions: deque[Action] = deque()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Announce us in the topic and act on its signals from now on."""
        self._worker = asyncio.create_task(self._work(), name=f"bridge {self.name}")

    def _in_room(self) -> bool:
        return any(channel.room is not None for channel in self.channels.values())

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        await self.links.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- signaling in -------------------------------------------------------------------------

    def on_publish(self, sender: Peer, data: Any) -> None:
        """One publish of another member of the topic."""
        try:
            inner = self._unseal(data)
            action = None if inner is None else self.table.receive(inner)
        except ProtocolError as exc:
            logger.debug(
                "bridge room=%s: ignoring a signaling message: %s", room_label(self.name), exc
            )
            return
        if action is None:
            return
        if self._new_peer(action) and not self.bridge.admits(self):
            self.table.closed(action.remote)
            return
        if len(self._actions) >= MAX_SIGNALS_WAITING:
            logger.warning(
                "bridge room=%s: signaling backlog full, dropping a signal", room_label(self.name)
            )
            return
        if not self.bridge.can_write(sender, self.name):
            self.read_only[action.remote] = True
        self._actions.append(action)
        self._wake.set()

    def _new_peer(self, action: Action) -> bool:
        if isinstance(action, Connect):
            return True
        return action.create and not action.replace

    def _unseal(self, data: Any) -> Any:
        if self.key is None:
            return data
        if not isinstance(data, str):
            return None  # a keyed receiver ignores non-string data (§4.4)
        return decrypt(self.key, data, max_size=self.bridge.settings.max_message_signaling)

    async def _work(self) -> None:
        await self.reannounce()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._actions:
                await self.links.act(self._actions.popleft())

    # -- signaling out (SignalPath) -----------------------------------------------------------

    def _publish(self, inner: dict[str, Any]) -> None:
        data = inner if self.key is None else encrypt(self.key, inner)
        message = {"type": "publish", "topic": self.name, "data": data}
        self.bridge.topics.publish(self.signaling, Publish(self.name, message))

    async def send_signal(self, remote: str, inner: dict[str, Any]) -> None:
        self._publish(inner)

    async def reannounce(self) -> None:
        if self.bridge.has_room_for(self):
            self.limited = False
            self._publish(self.table.announce())

    # -- channels (LinkHandler) ---------------------------------------------------------------

    def link_ready(self, link: Link) -> None:
        channel = _ChannelPeer(self.links, link)
        self.channels[link] = channel
        logger.info(
            "%s open webrtc room=%s framing=%s%s (peer %s)",
            channel.id,
            room_label(self.name),
            link.framing,
            " read-only" if self.read_only.get(link.remote) else "",
            link.remote,
        )
        task = asyncio.create_task(self._join(channel), name=f"join {channel.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _join(self, channel: _ChannelPeer) -> None:
        hub = self.bridge.rooms
        if self.name not in hub.rooms and len(hub.rooms) >= self.bridge.settings.max_rooms:
            logger.warning("%s: %d rooms loaded, closing the channel", channel.id, len(hub.rooms))
            channel.close(1013, "try again later")
            return
        try:
            room = await hub.join(self.name, channel)
        except StoreError:
            logger.exception("%s cannot load room %s", channel.id, room_label(self.name))
            channel.close(1011, "storage unavailable")
            return
        if channel.link.closed:
            hub.leave(room, channel)
            return
        if not self._in_room():
            room.join(self.mesh)
        channel.room = room
        read_only = self.read_only.get(channel.link.remote, False)
        channel.guard = self.bridge.guard(room, self.mesh.id, read_only, channel)
        waiting, channel.waiting = channel.waiting, []
        for message in waiting:
            if channel.link.closed:
                return
            try:
                self._feed(room, channel, message)
            except ProtocolError as exc:
                logger.warning("%s: protocol error, closing: %s", channel.id, exc)
                channel.close(1002, "protocol error")
                return

    def link_message(self, link: Link, message: bytes) -> None:
        channel = self.channels[link]
        if channel.room is None:
            if len(channel.waiting) >= MAX_MESSAGES_WHILE_LOADING:
                raise PolicyViolation("too many messages before the room loaded")
            channel.waiting.append(message)
            return
        self._feed(channel.room, channel, message)

    def _feed(self, room: Room, channel: _ChannelPeer, message: bytes) -> None:
        guard = channel.guard
        assert guard is not None
        decoder = Decoder(message)
        if decoder.read_var_uint() != yjs.MessageType.AWARENESS:
            checked = guard.check(message)
            if checked is not None:
                room.receive(channel, checked)
            return
        settings = self.bridge.settings
        entries = decode_awareness_update(
            decoder.read_var_uint8array(),
            max_entries=MAX_MESH_AWARENESS_ENTRIES,
            max_state_bytes=settings.max_awareness_state,
        )
        batch = settings.max_awareness_entries
        for start in range(0, len(entries), batch):
            update = encode_awareness_update(entries[start : start + batch])
            checked = guard.check(yjs.encode_awareness(update))
            if checked is not None:
                room.receive(self.mesh, checked)

    def link_app_message(self, link: Link, value: Any) -> None:
        """Edrys custom messages (42) are for peers with a user entry; the bridge has none."""

    def link_closed(self, link: Link) -> None:
        if link.remote not in self.table:  # not replaced by a new link to the same peer
            self.read_only.pop(link.remote, None)
        channel = self.channels.pop(link, None)
        if channel is None:
            return
        logger.info("%s closed webrtc room=%s", channel.id, room_label(self.name))
        room = channel.room
        if room is None:
            return
        self.bridge.rooms.leave(room, channel)
        if not self._in_room():
            self.bridge.rooms.leave(room, self.mesh)
            self.bridge.mesh_owners.release(self.name, self.mesh.id)


@dataclass
class _Probe:
    name: RoomName
    data: str


@dataclass
class Bridge:
    """Every bridged room of the server; the :class:`TopicHub`'s publish observer."""

    settings: Settings
    topics: TopicHub
    rooms: RoomHub
    owners: AwarenessOwners
    stats: SecurityStats
    can_write: CanWrite
    bridged: dict[str, BridgedRoom] = field(default_factory=dict)
    counters: BridgeStats = field(default_factory=BridgeStats)
    _left_alone: set[str] = field(default_factory=set)
    _full: set[str] = field(default_factory=set)
    """Topics not joined because of the total limit (logged once; retried on every publish)."""
    _probes: dict[str, _Probe] = field(default_factory=dict)
    _probe_wake: asyncio.Event = field(default_factory=asyncio.Event)
    _probe_task: asyncio.Task[None] | None = None
    _closing: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        s = self.settings
        self.identity = Identity.generate()
        self.options = ClientOptions(
            ice_servers=s.bridge_ice_servers,
            connect_timeout=s.open_timeout,
            max_message=s.max_message_yjs,
            max_signaling_message=s.max_message_signaling,
        )
        # One owner per room for all of its channels' awareness, sharing the ownership table
        # with the WebSocket door, so neither side can speak for IDs the other holds.
        self.mesh_owners = AwarenessOwners(
            max_ids=s.max_awareness_client_ids * s.bridge_max_peers_per_room,
            owners=self.owners.owners,
        )

    # -- discovery (the hub's observer) -------------------------------------------------------

    def may_join(self, topic: str) -> bool:
        """A probe of ``topic`` is waiting or running: the bridge may subscribe to it soon."""
        return topic in self._probes

    def published(self, sender: Peer, message: Publish) -> None:
        if isinstance(sender, _SignalingMember):
            return
        data = message.message.get("data")
        bridged = self.bridged.get(message.topic)
        if bridged is not None:
            bridged.on_publish(sender, data)
            return
        topic = message.topic
        if topic in self._left_alone or topic in self._probes:
            return
        name = room_for_topic(topic, self.settings.max_room_name)
        if name is None:
            self._leave_alone(topic, "names no room")
            return
        if self.peer_count >= self.settings.bridge_max_peers:
            self.counters.peers_refused += 1
            if topic not in self._full:
                self._full.add(topic)
                logger.warning(
                    "%d peers in all rooms (max %d): room %s stays peer to peer,"
                    " without the server",
                    self.peer_count,
                    self.settings.bridge_max_peers,
                    room_label(name),
                )
            return
        if isinstance(data, dict):
            self._open(name, None)
        elif isinstance(data, str):
            self._queue_probe(name, data)

    def _queue_probe(self, name: RoomName, data: str) -> None:
        if len(self._probes) >= MAX_PROBES_WAITING:
            self.counters.probes_skipped += 1
            return
        self._probes[name] = _Probe(name, data)
        if self._probe_task is None:
            self._probe_task = asyncio.create_task(self._probe_forever(), name="bridge probes")
        self._probe_wake.set()

    async def _probe_forever(self) -> None:
        while True:
            await self._probe_wake.wait()
            self._probe_wake.clear()
            while self._probes:
                probe = next(iter(self._probes.values()))
                started = time.monotonic()
                key = await self._probe(probe)
                del self._probes[probe.name]
                if key is None:
                    self._leave_alone(probe.name, "signaling does not decrypt")
                elif probe.name not in self.bridged:
                    self._open(probe.name, key)
                pause = 1 / PROBES_PER_SECOND - (time.monotonic() - started)
                if pause > 0:
                    await asyncio.sleep(pause)

    async def _probe(self, probe: _Probe) -> bytes | None:
        for password in self.settings.bridge_passwords:
            key = await asyncio.to_thread(derive_key, password, probe.name)
            try:
                decrypt(key, probe.data, max_size=self.settings.max_message_signaling)
            except ProtocolError:
                continue
            return key
        return None

    def _leave_alone(self, topic: str, why: str) -> None:
        self._left_alone.add(topic)
        self.counters.topics_left_alone += 1
        logger.info("topic %s left alone: %s", room_label(topic), why)

    def _open(self, name: RoomName, key: bytes | None) -> None:
        bridged = BridgedRoom(self, name, key)
        self.topics.connect(bridged.signaling)
        self.topics.subscribe(bridged.signaling, (name,))
        if name not in self.topics.subscriptions.get(bridged.signaling, ()):
            self.topics.disconnect(bridged.signaling)
            self._spawn_close(bridged)
            self._leave_alone(name, "the topic is full")
            return
        self.bridged[name] = bridged
        self._full.discard(name)
        bridged.start()
        logger.info(
            "joined WebRTC room %s (%s signaling)",
            room_label(name),
            "plaintext" if key is None else "encrypted",
        )

    # -- limits -------------------------------------------------------------------------------

    @property
    def peer_count(self) -> int:
        """Peer connections of all bridged rooms, negotiating or open."""
        return sum(len(bridged.table) for bridged in self.bridged.values())

    def has_room_for(self, bridged: BridgedRoom) -> bool:
        s = self.settings
        return len(bridged.table) < s.bridge_max_peers_per_room and (
            self.peer_count < s.bridge_max_peers
        )

    def admits(self, bridged: BridgedRoom) -> bool:
        """Whether a peer just added to ``bridged``'s table may stay (limits)."""
        s = self.settings
        total = self.peer_count
        if len(bridged.table) <= s.bridge_max_peers_per_room and total <= s.bridge_max_peers:
            return True
        self.counters.peers_refused += 1
        if not bridged.limited:
            bridged.limited = True
            logger.warning(
                "room %s reached a limit (%d peers in the room, max %d; %d in all rooms,"
                " max %d); further peers there stay peer to peer, without the server",
                room_label(bridged.name),
                len(bridged.table) - 1,
                s.bridge_max_peers_per_room,
                total - 1,
                s.bridge_max_peers,
            )
        return False

    def guard(self, room: Room, owner: str, read_only: bool, channel: _ChannelPeer) -> YjsGuard:
        return YjsGuard(
            room=room,
            peer_id=owner,
            read_only=read_only,
            settings=self.settings,
            owners=self.mesh_owners,
            stats=self.stats,
            notify=channel.send,
        )

    # -- housekeeping -------------------------------------------------------------------------

    def sweep(self) -> None:
        """Leave topics that nobody else holds any more (once their channels have closed)."""
        live = self.topics.topics
        for name, bridged in list(self.bridged.items()):
            if len(live.get(name, ())) <= 1 and not bridged.links.links:
                del self.bridged[name]
                self.topics.disconnect(bridged.signaling)
                self._spawn_close(bridged)
                logger.info("left WebRTC room %s", room_label(name))
        self._left_alone &= live.keys()
        self._full &= live.keys()

    def _spawn_close(self, bridged: BridgedRoom) -> None:
        task = asyncio.create_task(bridged.close(), name=f"close bridge {bridged.name}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Close every channel (peers reconnect to the next server run)."""
        if self._probe_task is not None:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task
        for name, bridged in list(self.bridged.items()):
            del self.bridged[name]
            self.topics.disconnect(bridged.signaling)
            self._spawn_close(bridged)
        await asyncio.gather(*self._closing, return_exceptions=True)

    def summary(self) -> dict[str, int]:
        return {
            "rooms": len(self.bridged),
            "peers": sum(b.links.link_count for b in self.bridged.values()),
            "peers_refused": self.counters.peers_refused,
            "topics_left_alone": self.counters.topics_left_alone,
            "probes_skipped": self.counters.probes_skipped,
        }


__all__ = ["Bridge", "BridgeStats", "BridgedRoom"]
