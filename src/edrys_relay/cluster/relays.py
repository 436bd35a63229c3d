"""Signaling publishes and ``/stream`` frames across nodes, over Redis pub/sub.

Both are ephemeral, so pub/sub (at most once, nothing stored) fits: a node subscribes to the
channel of each signaling topic and stream room it has members of, and publishes what its
clients send. Every message starts with the sending node's id, so a node skips its own.

Bounded everywhere (docs/threats.md V16, L5): signaling publishes wait in a queue of at most
``MAX_QUEUED`` (more are dropped and counted; y-webrtc announces again), a stream room keeps
only its newest frame waiting to be published (latest frame wins, as for viewers), and Redis
cuts off a subscriber that falls too far behind (``client-output-buffer-limit pubsub``); the
node then reconnects and subscribes again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from edrys_relay.cluster import keys
from edrys_relay.protocol import stream
from edrys_relay.security.redaction import room_label

if TYPE_CHECKING:
    from edrys_relay.server.streams import StreamClient, StreamHub
    from edrys_relay.server.topics import TopicHub

logger = logging.getLogger(__name__)

MAX_QUEUED = 1000
"""Signaling publishes waiting for Redis; more are dropped."""
RETRY_SECONDS = 0.5
SOURCE_TTL_MS = 15_000
"""A stream source's claim on its room, renewed by the node every ``SOURCE_RENEW_SECONDS``."""
SOURCE_RENEW_SECONDS = 5.0

_FRAME_JSON, _FRAME_BINARY, _SOURCE_ON, _SOURCE_OFF = b"J", b"B", b"A", b"D"


class _PubSubRelay(ABC):
    """Subscriptions that follow this node's members, a publisher and a listener task."""

    def __init__(self, redis: Redis, node: bytes, prefix: bytes) -> None:
        self._redis = redis
        self._node = node
        self._prefix = prefix
        self._pubsub: PubSub = redis.pubsub()
        self._channels: set[bytes] = set()
        self._changes: asyncio.Queue[tuple[bool, bytes]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._spawned: set[asyncio.Task[Any]] = set()
        self.dropped = 0

    async def start(self) -> None:
        # Always subscribed to something, so the listener can always wait for messages.
        await self._pubsub.subscribe(keys.PREFIX + b"node-channel:" + self._node)
        self._tasks = [
            asyncio.create_task(self._listen_forever(), name="pubsub-listen"),
            asyncio.create_task(self._subscribe_forever(), name="pubsub-subscribe"),
        ]

    async def aclose(self) -> None:
        for task in [*self._tasks, *self._spawned]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._spawned, return_exceptions=True)
        await self._pubsub.aclose()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    def follow(self, name: str, subscribed: bool) -> None:
        self._changes.put_nowait((subscribed, self._prefix + name.encode()))

    async def _subscribe_forever(self) -> None:
        while True:
            subscribed, channel = await self._changes.get()
            try:
                if subscribed and channel not in self._channels:
                    await self._pubsub.subscribe(channel)
                    self._channels.add(channel)
                elif not subscribed and channel in self._channels:
                    await self._pubsub.unsubscribe(channel)
                    self._channels.discard(channel)
            except (RedisError, OSError) as exc:
                logger.error("Redis: pub/sub subscription change failed: %s", exc)
                await asyncio.sleep(RETRY_SECONDS)
                self._changes.put_nowait((subscribed, channel))

    async def _listen_forever(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            except (RedisError, OSError) as exc:
                logger.error("Redis: pub/sub read failed: %s", exc)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if message is None or message.get("type") != "message":
                continue
            origin, _, body = bytes(message["data"]).partition(b"\n")
            channel = bytes(message["channel"])
            if origin != self._node and channel.startswith(self._prefix):
                try:
                    self.received(channel[len(self._prefix) :].decode(), body)
                except Exception:
                    logger.exception("message from node %r not delivered", origin)

    @abstractmethod
    def received(self, name: str, body: bytes) -> None:
        """A message another node published on the channel of ``name``."""

    def envelope(self, body: bytes) -> bytes:
        return self._node + b"\n" + body


class SignalingRelay(_PubSubRelay):
    """A :class:`~edrys_relay.server.topics.TopicRelay` over one channel per topic."""

    def __init__(self, redis: Redis, node: bytes, hub: TopicHub) -> None:
        super().__init__(redis, node, keys.topic_channel(""))
        self._hub = hub
        self._queue: list[tuple[bytes, bytes]] = []
        self._wakeup = asyncio.Event()

    async def start(self) -> None:
        await super().start()
        self._tasks.append(asyncio.create_task(self._publish_forever(), name="signaling-publish"))

    def opened(self, topic: str) -> None:
        self.follow(topic, True)

    def closed(self, topic: str) -> None:
        self.follow(topic, False)

    def publish(self, topic: str, message: dict[str, Any]) -> None:
        if len(self._queue) >= MAX_QUEUED:
            self.dropped += 1
            return
        body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
        self._queue.append((keys.topic_channel(topic), self.envelope(body)))
        self._wakeup.set()

    async def _publish_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._queue = self._queue, []
            try:
                pipe = self._redis.pipeline(transaction=False)
                for channel, payload in batch:
                    pipe.publish(channel, payload)
                await pipe.execute()
            except (RedisError, OSError) as exc:
                self.dropped += len(batch)  # signaling is ephemeral: peers announce again
                logger.error("Redis: %d signaling publishes lost: %s", len(batch), exc)
                await asyncio.sleep(RETRY_SECONDS)

    def received(self, name: str, body: bytes) -> None:
        message = json.loads(body)
        if isinstance(message, dict):
            self._hub.deliver(name, message)


class StreamRelay(_PubSubRelay):
    """A :class:`~edrys_relay.server.streams.FrameRelay` over one channel per stream room."""

    def __init__(self, redis: Redis, node: bytes, hub: StreamHub) -> None:
        super().__init__(redis, node, keys.stream_channel(""))
        self._hub = hub
        self._frames: dict[str, stream.RelayFrame] = {}
        """Per room, the newest frame not yet published (latest frame wins)."""
        self._sources: set[str] = set()
        """Rooms whose source is on this node."""
        self._wakeup = asyncio.Event()

    async def start(self) -> None:
        await super().start()
        self._tasks += [
            asyncio.create_task(self._publish_forever(), name="stream-publish"),
            asyncio.create_task(self._renew_forever(), name="stream-sources"),
        ]

    def opened(self, room_id: str) -> None:
        self.follow(room_id, True)

    def closed(self, room_id: str) -> None:
        self.follow(room_id, False)

    def frame(self, room_id: str, frame: stream.RelayFrame) -> None:
        if self._frames.get(room_id) is not None:
            self.dropped += 1
        self._frames[room_id] = frame
        self._wakeup.set()

    async def _publish_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            frames, self._frames = self._frames, {}
            try:
                pipe = self._redis.pipeline(transaction=False)
                for room_id, frame in frames.items():
                    kind = _FRAME_BINARY if frame.from_binary else _FRAME_JSON
                    pipe.publish(
                        keys.stream_channel(room_id), self.envelope(kind + frame.original())
                    )
                await pipe.execute()
            except (RedisError, OSError) as exc:
                self.dropped += len(frames)
                logger.error("Redis: stream frames not published: %s", exc)
                await asyncio.sleep(RETRY_SECONDS)

    def _control(self, room_id: str, kind: bytes) -> None:
        self._spawn(self._send_control(room_id, kind))

    async def _send_control(self, room_id: str, kind: bytes) -> None:
        try:
            await self._redis.publish(keys.stream_channel(room_id), self.envelope(kind))
        except (RedisError, OSError) as exc:
            logger.error(
                "Redis: stream room %s not told of its source: %s", room_label(room_id), exc
            )

    def claim_source(self, client: StreamClient, room_id: str) -> None:
        self._spawn(self._claim(client, room_id))

    async def _claim(self, client: StreamClient, room_id: str) -> None:
        """One source per room across nodes: the first claim in Redis wins."""
        key = keys.source_key(room_id)
        try:
            won = await self._redis.set(key, self._node, nx=True, px=SOURCE_TTL_MS)
            holder = None if won else await self._redis.get(key)
        except (RedisError, OSError) as exc:
            logger.error("Redis: stream source of %s not claimed: %s", room_label(room_id), exc)
            client.peer.send(stream.encode_error(stream.room_has_source(room_id)))
            return
        if not (won or holder == self._node):
            client.peer.send(stream.encode_error(stream.room_has_source(room_id)))
        elif self._hub.become_source(client, room_id):
            self._sources.add(room_id)
            await self._send_control(room_id, _SOURCE_ON)
        elif won:
            await self._release(room_id, announce=False)

    def source_released(self, room_id: str) -> None:
        if room_id in self._sources:
            self._sources.discard(room_id)
            self._spawn(self._release(room_id, announce=True))

    async def _release(self, room_id: str, *, announce: bool) -> None:
        key = keys.source_key(room_id)
        try:
            if await self._redis.get(key) == self._node and room_id not in self._sources:
                await self._redis.delete(key)
        except (RedisError, OSError) as exc:
            logger.error("Redis: stream source of %s not released: %s", room_label(room_id), exc)
        if announce:
            await self._send_control(room_id, _SOURCE_OFF)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(SOURCE_RENEW_SECONDS)
            try:
                pipe = self._redis.pipeline(transaction=False)
                for room_id in self._sources:
                    pipe.set(keys.source_key(room_id), self._node, px=SOURCE_TTL_MS)
                await pipe.execute()
            except (RedisError, OSError) as exc:
                logger.error("Redis: stream sources not renewed: %s", exc)

    def joined(self, client: StreamClient, room_id: str) -> None:
        self._spawn(self._tell_of_source(client, room_id))

    async def _tell_of_source(self, client: StreamClient, room_id: str) -> None:
        try:
            holder = await self._redis.get(keys.source_key(room_id))
        except (RedisError, OSError):
            return
        room = client.room
        elsewhere = holder is not None and holder != self._node
        if elsewhere and room is not None and room.room_id == room_id and room.source is None:
            client.peer.send(stream.encode_source_available(room_id))

    def received(self, name: str, body: bytes) -> None:
        kind, payload = body[:1], body[1:]
        if kind == _FRAME_JSON:
            self._hub.deliver_frame(name, stream.RelayFrame(json_text=payload))
        elif kind == _FRAME_BINARY:
            self._hub.deliver_frame(name, stream.RelayFrame(binary=payload))
        elif kind in (_SOURCE_ON, _SOURCE_OFF):
            self._hub.remote_source(name, kind == _SOURCE_ON)


__all__ = ["MAX_QUEUED", "SignalingRelay", "StreamRelay"]
