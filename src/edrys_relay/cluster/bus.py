"""The Redis room bus: many nodes serve the same rooms (docs/deployment.md, issue 15).

The y-redis design, one hop shorter. A node never relays an update before Redis has it: it
validates the update, then one Lua script call per loop turn (``_APPEND``) appends the turn's
entries in order to their rooms' streams (``XADD``) and publishes each entry, with its id and
origin, on the room's channel (named like the stream). The script is atomic, so a channel
carries its stream's entries in stream order. When the call returns, the node's own updates
are durable and its rooms relay them (``done(seq)``); the node's own awareness goes to its own
clients at once, as on one process.

Every node keeps one connection (``resp.py``, parsed by hiredis) subscribed to the channel of
each room it has loaded, and handles each message as it comes: another node's update is kept
and relayed (that node validated it: ``Room.deliver``), awareness is applied, a query is
answered, a compaction marker installs the snapshot; the node's own entries only move its
cursor. A subscription misses what was appended before it took effect and while the
connection was down, so after every (re)subscription the node reads the stream from its
cursor (``XRANGE``) and holds the room's messages meanwhile: nothing is lost, nothing handled
twice. No read names every room: a node's work grows with its rooms' entries, not their number.

A node that loads a room asks the others for their clients' awareness states (a ``q`` entry).
Each node renews a heartbeat key; a node whose key expired is gone, and the awareness states
it spoke for are removed within ``HEARTBEAT_TTL`` plus one check. Compaction markers (``c``
entries, written by ``worker.py``) tell every node to install the new snapshot; a node that
finds a marker past entries it never read (they were trimmed first) catches up from the
snapshot.

For ``/metrics`` (docs/operations.md) the bus keeps plain counters (:class:`RedisStats`, and
the ``WriterStats`` every bus has) that :class:`RedisCollector` reads at scrape time; the
commit histogram gets one observation per append call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from edrys_relay.cluster import keys, resp
from edrys_relay.cluster.relays import SignalingRelay, StreamRelay
from edrys_relay.cluster.worker import CompactionWorker
from edrys_relay.config import MiB, Settings
from edrys_relay.protocol import yupdate
from edrys_relay.protocol.errors import ProtocolError
from edrys_relay.protocol.routing import RoomName
from edrys_relay.security.redaction import room_label
from edrys_relay.storage.base import Record, StoreError
from edrys_relay.storage.writer import Committed, WriterStats

if TYPE_CHECKING:
    from edrys_relay.server.rooms import Room
    from edrys_relay.server.streams import StreamHub
    from edrys_relay.server.topics import TopicHub

logger = logging.getLogger(__name__)

SOCKET_TIMEOUT = 5.0
"""Read deadline of every Redis connection."""
MAX_CONNECTIONS = 32
"""Connections of a node's command pool; a command waits (``SOCKET_TIMEOUT``) for a free one."""
PING_SECONDS = 2.0
"""The feed connection pings Redis after this long without a message."""
BATCH_ENTRIES = 1000
BATCH_BYTES = 4 * MiB
"""One ``_APPEND`` call takes at most this many entries and bytes (but always one entry)."""
READ_COUNT = 1000
"""Entries one catch-up ``XRANGE`` returns at most."""
HELD_ENTRIES = 1000
HELD_BYTES = 16 * MiB
"""Messages a room holds while it catches up; past either bound they are dropped and read
from the stream instead."""
SUBSCRIBE_CHUNK = 500
HEARTBEAT_SECONDS = 2.0
HEARTBEAT_TTL_MS = 6000
RETRY_INITIAL = 0.05
RETRY_MAX = 2.0
CLOSE_TIMEOUT = 30.0

_UPDATE, _AWARENESS, _QUERY, _MARKER = b"u", b"a", b"q", b"c"
_KINDS = (_UPDATE, _AWARENESS, _QUERY, _MARKER)

_APPEND = """
-- KEYS: the room stream of each entry; ARGV[1]: this node; then kind and data of each entry
local origin = ARGV[1]
local ids = {}
for i, key in ipairs(KEYS) do
  local kind, data = ARGV[2 * i], ARGV[2 * i + 1]
  local id = redis.call('XADD', key, '*', kind, data, 'o', origin)
  redis.call('PUBLISH', key, id .. ' ' .. origin .. ' ' .. kind .. data)
  ids[i] = id
end
return ids
"""


def new_node_id() -> bytes:
    """Unique per process start: pid for people reading logs, random bytes for uniqueness."""
    return f"{os.getpid()}-{secrets.token_hex(4)}".encode()


def connect(url: str) -> Redis:
    """A Redis client whose every read has a deadline, on a bounded pool of connections.

    A join storm (a thousand rooms loading at once) waits for a connection instead of
    opening one per command or failing with "too many connections".
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=SOCKET_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=5,
    )
    return Redis.from_pool(pool)


@dataclass(slots=True)
class _Out:
    """An entry waiting for ``_APPEND``; ``done`` runs with its seq once it is in the stream."""

    key: bytes
    kind: bytes
    data: bytes
    done: Committed | None = None


_Entry = tuple[int, bytes, bytes, bytes]
"""seq, origin, kind, data"""


@dataclass(slots=True, eq=False)
class _Feed:
    """A loaded room as the read side sees it."""

    room: Room
    key: bytes
    seq: int
    """The last entry handled (or loaded)."""
    owners: dict[bytes, set[int]] = field(default_factory=dict)
    """Awareness client ids heard from each other node."""
    subscribed: bool = False
    """The feed connection's subscription to the room's channel is in effect."""
    held: list[_Entry] | None = field(default_factory=list)
    """Messages waiting for a catch-up read; None while messages are handled as they come."""
    held_bytes: int = 0
    entries: int = 0
    """Entries handled since the last compaction marker (awareness too: it must be trimmed)."""
    reading: bool = False
    again: bool = False
    """Read the stream once more before handling messages as they come."""
    installed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set (and replaced) each time a compaction marker was handled."""


@dataclass(slots=True)
class RedisStats:
    """What this node did on Redis since start (``/metrics``)."""

    entries_read: int = 0
    """Room stream entries handled (updates, awareness, queries, markers)."""
    read_lag_seconds: float = 0.0
    """Age of the newest entry handled, when handled; 0 once the feed is quiet for a ping."""
    write_errors: int = 0
    read_errors: int = 0
    heartbeat_errors: int = 0


class RedisBus:
    """A :class:`~edrys_relay.server.bus.RoomBus` shared by every node on one Redis.

    ``observe_commit`` is told the seconds each append call took, retries included.
    """

    def __init__(
        self,
        settings: Settings,
        url: str,
        observe_commit: Callable[[float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.node = new_node_id()
        self.stats = WriterStats()
        """Updates appended (the append call returned) and failed attempts, as the store's."""
        self.redis_stats = RedisStats()
        self._observe_commit = observe_commit
        self._url = url
        self._redis = connect(url)
        self._append = self._redis.register_script(_APPEND)
        self._feeds: dict[bytes, _Feed] = {}
        self._loaded: dict[bytes, int] = {}
        """Seq of the last entry a load read, until the room opens."""
        self._queue: deque[_Out] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._backlog = 0
        self._feed_connection: resp.RespConnection | None = None
        self._subscribing: dict[bytes, int] = {}
        """SUBSCRIBEs sent on the feed connection and not yet confirmed, per channel."""
        self._requested: dict[RoomName, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._spawned: set[asyncio.Task[Any]] = set()
        self.worker = CompactionWorker(settings, self._redis, self.node, self.request_compaction)
        self._relays: list[SignalingRelay | StreamRelay] = []

    def relay_hubs(self, topics: TopicHub, streams: StreamHub) -> None:
        """Carry signaling publishes and stream frames across nodes too (``relays.py``)."""
        topics.relay = signaling = SignalingRelay(self._redis, self.node, topics)
        streams.relay = frames = StreamRelay(self._redis, self.node, streams)
        self._relays = [signaling, frames]

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Check that Redis answers (raises :class:`StoreError`), then start the loops."""
        try:
            await self._redis.ping()
            await self._redis.set(keys.node_key(self.node), b"1", px=HEARTBEAT_TTL_MS)
            await self.worker.prepare()
            for relay in self._relays:
                await relay.start()
        except (RedisError, OSError) as exc:
            await self._redis.aclose()
            raise StoreError(f"cannot use Redis: {exc}") from exc
        self._tasks = [
            asyncio.create_task(self._write_forever(), name="redis-writer"),
            asyncio.create_task(self._read_forever(), name="redis-reader"),
            asyncio.create_task(self._heartbeat_forever(), name="redis-heartbeat"),
            asyncio.create_task(self.worker.run_forever(), name="redis-compaction"),
        ]
        logger.info("node %s on Redis", self.node.decode())

    async def aclose(self) -> None:
        """Append what is queued (for a while if Redis is gone), stop, say this node left."""
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.flush()
        except TimeoutError:
            logger.error("closing with %d entries not appended", len(self._queue))
        for task in [*self._tasks, *self._spawned]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._spawned, return_exceptions=True)
        self._tasks = []
        for relay in self._relays:
            await relay.aclose()
        with contextlib.suppress(RedisError, OSError):  # else the key expires by itself
            await self._redis.delete(keys.node_key(self.node))
        await self._redis.aclose()

    async def flush(self) -> None:
        """Wait until every entry queued so far is appended (and this node's updates relayed)."""
        await self._idle.wait()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    # -- appending ----------------------------------------------------------------------------

    @property
    def backlog_bytes(self) -> int:
        """Bytes queued for Redis or in the call under way."""
        return self._backlog

    def append(self, room: RoomName, update: bytes, done: Committed) -> None:
        self._enqueue(_Out(keys.log_key(room), _UPDATE, update, done))

    def announce(self, room: Room, update: bytes) -> None:
        """To this node's clients now; to the others unless Redis is that far behind."""
        room.send_awareness(update)
        if self._backlog <= self.settings.store_backlog_max:  # awareness is sent again anyway
            self._enqueue(_Out(keys.log_key(room.name), _AWARENESS, update))

    def _enqueue(self, out: _Out) -> None:
        self._backlog += len(out.data)
        self._queue.append(out)
        self._idle.clear()
        self._wakeup.set()

    async def _write_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                await self._write(self._take_batch())
            self._idle.set()

    def _take_batch(self) -> list[_Out]:
        queue = self._queue
        batch = [queue.popleft()]
        size = len(batch[0].data)
        while queue and len(batch) < BATCH_ENTRIES and size + len(queue[0].data) <= BATCH_BYTES:
            out = queue.popleft()
            batch.append(out)
            size += len(out.data)
        return batch

    async def _write(self, batch: list[_Out]) -> None:
        """Append and publish the batch in one script call; retry it until it lands."""
        stream_keys = [out.key for out in batch]
        args = [self.node]
        for out in batch:
            args += (out.kind, out.data)
        delay = RETRY_INITIAL
        started = time.perf_counter()
        while True:
            try:
                ids: Any = await self._append(keys=stream_keys, args=args)
                break
            except (RedisError, OSError) as exc:
                # A call that failed after Redis ran it is run again: a duplicate is harmless.
                self.stats.failures += 1
                self.redis_stats.write_errors += 1
                logger.error("Redis: append of %d entries failed, retrying: %s", len(batch), exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
        if self._observe_commit is not None:
            self._observe_commit(time.perf_counter() - started)
        stats = self.stats
        stats.commits += 1
        for out, entry_id in zip(batch, ids, strict=True):
            self._backlog -= len(out.data)
            if out.done is not None:
                stats.updates += 1
                stats.bytes += len(out.data)
                try:
                    out.done(keys.id_to_seq(entry_id))
                except Exception:
                    logger.exception("after-append callback failed for %s", _label(out.key))

    # -- loading ------------------------------------------------------------------------------

    async def load(self, room: RoomName) -> list[Record]:
        """Snapshot and stream tail, read in one transaction (a compaction can't come between)."""
        key = keys.log_key(room)
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.hmget(keys.snapshot_key(room), [b"data", b"last"])
            pipe.xrange(key, b"-", b"+")
            (data, last), entries = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: cannot load room: {exc}") from exc
        records: list[Record] = []
        cursor_seq = 0
        if data is not None and last is not None:
            cursor_seq = keys.id_to_seq(last)
            records.append(Record(cursor_seq, data, merged=True))
        snapshot_seq = cursor_seq
        for entry_id, fields in entries:
            seq = keys.id_to_seq(entry_id)
            update = fields.get(_UPDATE)
            if update is not None and seq > snapshot_seq:
                records.append(Record(seq, update))
            cursor_seq = max(cursor_seq, seq)
        self._loaded[key] = cursor_seq
        return records

    async def quarantine(self, room: RoomName, seqs: Sequence[int], reason: str) -> None:
        """Move refused records to the room's quarantine stream, keeping their bytes."""
        log, snap, target = keys.log_key(room), keys.snapshot_key(room), keys.quarantine_key(room)
        try:
            last = await self._redis.hget(snap, b"last")
            for seq in seqs:
                entry_id = keys.seq_to_id(seq)
                if last is not None and entry_id == last:
                    data = await self._redis.hget(snap, b"data")
                    await self._redis.delete(snap)
                else:
                    found: Any = await self._redis.xrange(log, entry_id, entry_id)
                    data = found[0][1].get(_UPDATE) if found else None
                    await self._redis.xdel(log, entry_id)
                if data is not None:
                    fields = {b"id": entry_id, b"reason": reason.encode(), b"data": data}
                    await self._redis.xadd(target, fields)  # type: ignore[arg-type]
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: cannot quarantine: {exc}") from exc

    def opened(self, room: Room) -> None:
        key = keys.log_key(room.name)
        self._feeds[key] = _Feed(room, key, self._loaded.pop(key, 0))
        self._subscribe([key])
        self._enqueue(_Out(key, _QUERY, b""))

    def closed(self, room: Room) -> None:
        key = keys.log_key(room.name)
        self._feeds.pop(key, None)
        self._requested.pop(room.name, None)
        if self._feed_connection is not None:
            self._feed_connection.send(b"UNSUBSCRIBE", key)

    # -- the feed: what this node's rooms hear ------------------------------------------------

    async def _read_forever(self) -> None:
        """Keep the feed connection subscribed to every loaded room; reconnect when it fails."""
        delay = RETRY_INITIAL
        while True:
            try:
                connection = await resp.open_connection(self._url)
            except resp.RespError as exc:
                self.redis_stats.read_errors += 1
                logger.error("Redis: feed connection failed, retrying in %.2f s: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            self._feed_connection = connection
            self._subscribing = {}
            try:
                self._subscribe(list(self._feeds))
                await self._listen(connection)
            except resp.RespError as exc:
                self.redis_stats.read_errors += 1
                logger.error("Redis: feed connection lost, reconnecting: %s", exc)
                delay = RETRY_INITIAL
            finally:
                self._feed_connection = None
                connection.close()
                for feed in self._feeds.values():
                    # Whatever comes next is read from the stream once subscribed again.
                    feed.subscribed = False
                    if feed.held is None:
                        feed.held, feed.held_bytes = [], 0
            await asyncio.sleep(delay)

    async def _listen(self, connection: resp.RespConnection) -> None:
        pinged = False
        while True:
            try:
                async with asyncio.timeout(SOCKET_TIMEOUT if pinged else PING_SECONDS):
                    replies = await connection.read()
            except TimeoutError:
                if pinged:
                    raise resp.RespError("no answer to PING") from None
                self.redis_stats.read_lag_seconds = 0.0  # quiet: nothing is waiting
                connection.send(b"PING")
                pinged = True
                continue
            pinged = False
            for reply in replies:
                try:
                    kind = reply[0]
                    if kind == b"message":
                        self._message(reply[1], reply[2])
                    elif kind == b"subscribe":
                        self._subscribed(reply[1])
                except Exception:
                    logger.exception("Redis: feed message not handled: %.80r", reply)

    def _subscribe(self, channels: list[bytes]) -> None:
        connection = self._feed_connection
        if connection is None:
            return  # _read_forever subscribes every loaded room once connected
        for i in range(0, len(channels), SUBSCRIBE_CHUNK):
            chunk = channels[i : i + SUBSCRIBE_CHUNK]
            connection.send(b"SUBSCRIBE", *chunk)
            for channel in chunk:
                self._subscribing[channel] = self._subscribing.get(channel, 0) + 1

    def _subscribed(self, channel: bytes) -> None:
        """A SUBSCRIBE took effect; once the last one sent for the channel has, catch up."""
        left = self._subscribing.get(channel, 0) - 1
        if left > 0:
            self._subscribing[channel] = left
            return
        self._subscribing.pop(channel, None)
        feed = self._feeds.get(channel)
        if feed is not None:
            feed.subscribed = True
            if feed.reading:
                feed.again = True
            else:
                self._spawn(self._catch_up(feed))

    def _message(self, channel: bytes, payload: bytes) -> None:
        feed = self._feeds.get(channel)
        if feed is None:
            return
        try:
            entry_id, origin, body = payload.split(b" ", 2)
            seq = keys.id_to_seq(entry_id)
        except ValueError:
            logger.error("Redis: malformed message for room %s", feed.room.label)
            return
        entry = (seq, origin, body[:1], body[1:])
        if feed.held is None:
            self._handle(feed, *entry)
            return
        feed.held.append(entry)
        feed.held_bytes += len(body)
        if len(feed.held) > HELD_ENTRIES or feed.held_bytes > HELD_BYTES:
            feed.held, feed.held_bytes = [], 0
            feed.again = True

    async def _catch_up(self, feed: _Feed) -> None:
        """Read the stream past the feed's cursor, then handle the messages it held."""
        feed.reading = True
        delay = RETRY_INITIAL
        try:
            while self._feeds.get(feed.key) is feed:
                feed.again = False
                try:
                    found: Any = await self._redis.xrange(
                        feed.key, b"(" + keys.seq_to_id(feed.seq), b"+", count=READ_COUNT
                    )
                except (RedisError, OSError) as exc:
                    self.redis_stats.read_errors += 1
                    logger.error("Redis: catch-up read of room %s failed: %s", feed.room.label, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
                    feed.again = True
                    continue
                for entry_id, fields in found:
                    kind, data = _kind_of(fields)
                    self._handle(feed, keys.id_to_seq(entry_id), fields.get(b"o", b""), kind, data)
                if len(found) < READ_COUNT and not feed.again:
                    break
            if feed.subscribed and feed.held is not None:
                held, feed.held, feed.held_bytes = feed.held, None, 0
                for entry in held:
                    self._handle(feed, *entry)
        finally:
            feed.reading = False

    def _handle(self, feed: _Feed, seq: int, origin: bytes, kind: bytes, data: bytes) -> None:
        """One stream entry, in stream order; an entry at or before the cursor is skipped."""
        before = feed.seq
        if seq <= before:
            return
        feed.seq = seq
        stats = self.redis_stats
        stats.entries_read += 1
        stats.read_lag_seconds = max(0.0, time.time() - (seq >> 32) / 1000)
        if kind == _MARKER:
            feed.entries = 0
            caught_up = before >= keys.id_to_seq(data)
            self._spawn(self._install_snapshot(feed, data, caught_up=caught_up))
            return
        feed.entries += 1
        if feed.entries >= self.settings.compact_updates and self._may_ask(feed.room.name):
            self._spawn(self.request_compaction(feed.room.name))
        if origin == self.node:
            return  # delivered when its append returned
        elif kind == _UPDATE:
            feed.room.deliver(seq, data)
        elif kind == _AWARENESS:
            self._hear(feed, origin, data)
        elif kind == _QUERY:
            mine = feed.room.local_awareness()
            if mine is not None:
                self._enqueue(_Out(feed.key, _AWARENESS, mine))

    def _hear(self, feed: _Feed, origin: bytes, update: bytes) -> None:
        try:
            change = feed.room.hear_awareness(update)
        except ProtocolError as exc:
            logger.error("room %s: bad awareness from node %r: %s", feed.room.label, origin, exc)
            return
        owned = feed.owners.setdefault(origin, set())
        owned.update(change.added)
        owned.update(change.updated)
        owned.difference_update(change.removed)

    async def _install_snapshot(self, feed: _Feed, last: bytes, *, caught_up: bool) -> None:
        """A worker compacted the room up to ``last``: serve its snapshot from now on."""
        try:
            await self._take_snapshot(feed, last, caught_up=caught_up)
        finally:
            # Compaction may be asked for again only now that the history is short.
            if self._feeds.get(feed.key) is feed:
                self._requested.pop(feed.room.name, None)
            feed.installed.set()
            feed.installed = asyncio.Event()

    async def _take_snapshot(self, feed: _Feed, last: bytes, *, caught_up: bool) -> None:
        try:
            snapshot: Any = await self._redis.hmget(
                keys.snapshot_key(feed.room.name), [b"data", b"last"]
            )
            data, stored = snapshot
        except (RedisError, OSError) as exc:
            logger.error("room %s: cannot read the new snapshot: %s", feed.room.label, exc)
            return
        if data is None or stored is None or (caught_up and stored != last):
            return  # a newer compaction's marker follows
        try:
            merged = await asyncio.to_thread(yupdate.parse_update, data)
        except ProtocolError as exc:
            logger.error("room %s: snapshot refused: %s", feed.room.label, exc)
            return
        if self._feeds.get(feed.key) is not feed:
            return
        seq = keys.id_to_seq(stored)
        if caught_up:
            feed.room.history.compacted_through(seq, merged)
            return
        logger.warning("room %s: entries were trimmed before this node read them", feed.room.label)
        feed.room.catch_up(seq, merged)

    # -- compaction requests ------------------------------------------------------------------

    async def compact(self, room: Room) -> None:
        """Ask for a compaction; wait (a lease at most) until this node installed its snapshot.

        The room hub runs one of these per room at a time, so a long history asks once per
        compaction, not once per commit until the marker arrives.
        """
        if room.history.record_count < 2:
            return
        await self.request_compaction(room.name)
        feed = self._feeds.get(keys.log_key(room.name))
        if feed is None or feed.room is not room:
            return  # not open yet (compacted while loading): nothing to wait for
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.compaction_lease_seconds):
                await feed.installed.wait()

    def _may_ask(self, room: RoomName) -> bool:
        """Not asked within a lease (or asked, and its snapshot is installed since)."""
        asked = self._requested.get(room)
        return asked is None or time.monotonic() - asked >= self.settings.compaction_lease_seconds

    async def request_compaction(self, room: RoomName) -> None:
        """Queue a compaction task for the room, once per lease across every node."""
        if not self._may_ask(room):
            return
        self._requested[room] = time.monotonic()
        lease_ms = int(self.settings.compaction_lease_seconds * 1000)
        try:
            if await self._redis.set(keys.task_key(room), self.node, nx=True, px=lease_ms):
                await self._redis.xadd(keys.TASKS, {b"room": room.encode()})
        except (RedisError, OSError) as exc:
            logger.error("room %s: compaction not requested: %s", room_label(room), exc)

    # -- nodes --------------------------------------------------------------------------------

    async def _heartbeat_forever(self) -> None:
        """Renew this node's key; drop the awareness states of nodes whose key expired."""
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self._redis.set(keys.node_key(self.node), b"1", px=HEARTBEAT_TTL_MS)
                await self._drop_dead_nodes()
            except (RedisError, OSError) as exc:
                self.redis_stats.heartbeat_errors += 1
                logger.error("Redis: heartbeat failed: %s", exc)

    async def _drop_dead_nodes(self) -> None:
        nodes = sorted(
            {n for feed in self._feeds.values() for n, ids in feed.owners.items() if ids}
        )
        if not nodes:
            return
        pipe = self._redis.pipeline(transaction=False)
        for node in nodes:
            pipe.exists(keys.node_key(node))
        alive = await pipe.execute()
        dead = {node for node, present in zip(nodes, alive, strict=True) if not present}
        for node in dead:
            logger.info("node %s is gone: removing its clients' awareness", node.decode())
        for feed in list(self._feeds.values()):
            for node in dead:
                ids = feed.owners.pop(node, None)
                if ids:
                    feed.room.drop_awareness(ids)


def _kind_of(fields: dict[bytes, bytes]) -> tuple[bytes, bytes]:
    """An entry's kind and data as ``XRANGE`` returns its fields."""
    for kind in _KINDS:
        data = fields.get(kind)
        if data is not None:
            return kind, data
    return b"", b""


def _label(key: bytes) -> str:
    """The log label of the room whose stream is ``key``."""
    return room_label(key[len(keys.log_key("")) :].decode())


class RedisCollector(Collector):
    """The Redis mode's own metrics, read at scrape time (docs/operations.md "Metrics")."""

    def __init__(self, bus: RedisBus) -> None:
        self._bus = bus

    def collect(self) -> Iterator[Metric]:
        stats = self._bus.redis_stats
        yield GaugeMetricFamily(
            "edrys_relay_redis_stream_lag_seconds",
            "Age of the newest room stream entry when this node handled it; 0 when quiet",
            value=stats.read_lag_seconds,
        )
        yield CounterMetricFamily(
            "edrys_relay_redis_entries_read",
            "Room stream entries this node handled",
            value=stats.entries_read,
        )
        errors = CounterMetricFamily(
            "edrys_relay_redis_errors",
            "Failed Redis operations (each is retried)",
            labels=["operation"],
        )
        errors.add_metric(["append"], stats.write_errors)
        errors.add_metric(["read"], stats.read_errors)
        errors.add_metric(["heartbeat"], stats.heartbeat_errors)
        yield errors


__all__ = [
    "HEARTBEAT_TTL_MS",
    "RedisBus",
    "RedisCollector",
    "RedisStats",
    "connect",
    "new_node_id",
]
