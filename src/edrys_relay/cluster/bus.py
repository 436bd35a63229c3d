"""The Redis room bus: many nodes serve the same rooms (docs/deployment.md, issue 15).

The y-redis design: a node never relays an update itself. It validates the update, appends it
to the room's Redis Stream (``XADD``, one pipeline per loop turn on one connection, so a
node's entries keep their order), and one blocking ``XREAD`` loop per node, on a connection of
its own, reads every loaded room's stream and delivers each entry to the room: an entry this
node wrote completes the room's pending update (and is relayed to everyone but its sender,
once its ``XADD`` has returned), any other is applied and relayed to all. So every node
delivers in stream order, and a client sees an update only once Redis has it.

Awareness goes through the stream too, behind the updates it may refer to. A node that loads
a room asks the others for their clients' states (a ``q`` entry). Each node renews a
heartbeat key; a node whose key expired is gone, and the awareness states it spoke for are
removed within ``HEARTBEAT_TTL`` plus one check. Compaction markers (``c`` entries, written by
``worker.py``) tell every node to install the new snapshot; a node that finds a marker past
entries it never read (it was disconnected, or slow) catches up from the snapshot.

For ``/metrics`` (docs/operations.md) the bus keeps plain counters (:class:`RedisStats`, and
the ``WriterStats`` every bus has) that :class:`RedisCollector` reads at scrape time; the
commit histogram gets one observation per ``XADD`` pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from redis.exceptions import RedisError

from edrys_relay.cluster import keys
from edrys_relay.cluster.relays import SignalingRelay, StreamRelay
from edrys_relay.cluster.worker import CompactionWorker
from edrys_relay.config import Settings
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

READ_BLOCK_MS = 1000
READ_COUNT = 1000
"""Entries one ``XREAD`` returns per stream at most."""
SOCKET_TIMEOUT = 5.0
"""Read deadline of every Redis connection; longer than ``READ_BLOCK_MS``."""
HEARTBEAT_SECONDS = 2.0
HEARTBEAT_TTL_MS = 6000
RETRY_INITIAL = 0.05
RETRY_MAX = 2.0
CLOSE_TIMEOUT = 30.0


def new_node_id() -> bytes:
    """Unique per process start: pid for people reading logs, random bytes for uniqueness."""
    return f"{os.getpid()}-{secrets.token_hex(4)}".encode()


def connect(url: str) -> Redis:
    """A Redis client whose every read has a deadline."""
    return Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=5)


@dataclass(slots=True, eq=False)
class _Pending:
    """An update this node appended, until its entry comes back through the read loop."""

    done: Committed
    size: int
    seq: int = 0
    """Its stream id as a seq, once ``XADD`` returned."""
    written: asyncio.Event | None = None


@dataclass(slots=True)
class _Out:
    key: bytes
    fields: dict[bytes, bytes]
    pending: _Pending | None = None


@dataclass(slots=True, eq=False)
class _Feed:
    """A loaded room as the read loop sees it."""

    room: Room
    key: bytes
    cursor: bytes
    seq: int
    pending: dict[bytes, _Pending] = field(default_factory=dict)
    owners: dict[bytes, set[int]] = field(default_factory=dict)
    """Awareness client ids heard from each other node."""
    entries: int = 0
    """Entries read since the last compaction marker."""


@dataclass(slots=True)
class RedisStats:
    """What this node did on Redis since start (``/metrics``)."""

    entries_read: int = 0
    """Room stream entries the read loop dispatched (updates, awareness, markers)."""
    read_lag_seconds: float = 0.0
    """Age of the newest entry of the last ``XREAD`` reply; 0 once a read finds nothing new."""
    write_errors: int = 0
    read_errors: int = 0
    heartbeat_errors: int = 0


class RedisBus:
    """A :class:`~edrys_relay.server.bus.RoomBus` shared by every node on one Redis.

    ``observe_commit`` is told the seconds each ``XADD`` pipeline took, retries included.
    """

    def __init__(
        self,
        settings: Settings,
        url: str,
        observe_commit: Callable[[float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.stats = WriterStats()
        """Updates appended (``XADD`` returned) and failed attempts, as the store writer's."""
        self.redis_stats = RedisStats()
        self._observe_commit = observe_commit
        self.node = new_node_id()
        self._redis = connect(url)
        self._reader = Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=5,
            single_connection_client=True,
        )
        self._reader_id: int | None = None
        self._feeds: dict[bytes, _Feed] = {}
        self._loaded: dict[bytes, tuple[bytes, int]] = {}
        """Cursor after a load, until the room opens."""
        self._queue: list[_Out] = []
        self._wakeup = asyncio.Event()
        self._feeds_changed = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tokens = 0
        self._pending_count = 0
        self._backlog = 0
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
            await self._close_clients()
            raise StoreError(f"cannot use Redis: {exc}") from exc
        self._tasks = [
            asyncio.create_task(self._write_forever(), name="redis-writer"),
            asyncio.create_task(self._read_forever(), name="redis-reader"),
            asyncio.create_task(self._heartbeat_forever(), name="redis-heartbeat"),
            asyncio.create_task(self.worker.run_forever(), name="redis-compaction"),
        ]
        logger.info("node %s on Redis", self.node.decode())

    async def aclose(self) -> None:
        """Deliver what is pending (for a while if Redis is gone), stop, say this node left."""
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.flush()
        except TimeoutError:
            logger.error("closing with %d updates not delivered", self._pending_count)
        for task in [*self._tasks, *self._spawned]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._spawned, return_exceptions=True)
        self._tasks = []
        for relay in self._relays:
            await relay.aclose()
        with contextlib.suppress(RedisError, OSError):  # else the key expires by itself
            await self._redis.delete(keys.node_key(self.node))
        await self._close_clients()

    async def _close_clients(self) -> None:
        await self._redis.aclose()
        await self._reader.aclose()

    async def flush(self) -> None:
        """Wait until every entry queued so far is written and this node's updates delivered."""
        await self._idle.wait()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    # -- appending ----------------------------------------------------------------------------

    @property
    def backlog_bytes(self) -> int:
        return self._backlog

    def append(self, room: RoomName, update: bytes, done: Committed) -> None:
        key = keys.log_key(room)
        feed = self._feeds.get(key)
        assert feed is not None, "append to a room that is not open"
        self._tokens += 1
        token = b"%d" % self._tokens
        pending = _Pending(done, len(update))
        feed.pending[token] = pending
        self._pending_count += 1
        self._backlog += len(update)
        self._enqueue(_Out(key, {b"u": update, b"o": self.node, b"t": token}, pending))

    def announce(self, room: Room, update: bytes) -> None:
        self._enqueue(_Out(keys.log_key(room.name), {b"a": update, b"o": self.node}))

    def _enqueue(self, out: _Out) -> None:
        self._queue.append(out)
        self._idle.clear()
        self._wakeup.set()

    async def _write_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._queue = self._queue, []
            if batch:
                await self._write(batch)
            self._check_idle()

    async def _write(self, batch: list[_Out]) -> None:
        """XADD the batch in one pipeline, in order; retry the whole batch until it lands."""
        written = asyncio.Event()
        for out in batch:
            if out.pending is not None:
                out.pending.written = written
        delay = RETRY_INITIAL
        started = time.perf_counter()
        while True:
            try:
                pipe = self._redis.pipeline(transaction=False)
                for out in batch:
                    pipe.xadd(out.key, out.fields)  # type: ignore[arg-type]
                ids = await pipe.execute()
                break
            except (RedisError, OSError) as exc:
                # Entries that did land are written again: a duplicate Yjs update is harmless.
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
            if out.pending is not None:
                out.pending.seq = keys.id_to_seq(entry_id)
                stats.updates += 1
                stats.bytes += out.pending.size
        written.set()

    def _check_idle(self) -> None:
        if not self._queue and not self._pending_count:
            self._idle.set()

    def _complete(self, pending: _Pending, seq: int, room: RoomName) -> None:
        self._pending_count -= 1
        self._backlog -= pending.size
        try:
            pending.done(seq)
        except Exception:
            logger.exception("after-append callback failed for room %s", room_label(room))
        self._check_idle()

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
        cursor, cursor_seq = b"0-0", 0
        if data is not None and last is not None:
            cursor, cursor_seq = last, keys.id_to_seq(last)
            records.append(Record(cursor_seq, data, merged=True))
        snapshot_seq = cursor_seq
        for entry_id, fields in entries:
            seq = keys.id_to_seq(entry_id)
            update = fields.get(b"u")
            if update is not None and seq > snapshot_seq:
                records.append(Record(seq, update))
            cursor, cursor_seq = entry_id, max(cursor_seq, seq)
        self._loaded[key] = (cursor, cursor_seq)
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
                    data = found[0][1].get(b"u") if found else None
                    await self._redis.xdel(log, entry_id)
                if data is not None:
                    fields = {b"id": entry_id, b"reason": reason.encode(), b"data": data}
                    await self._redis.xadd(target, fields)  # type: ignore[arg-type]
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: cannot quarantine: {exc}") from exc

    def opened(self, room: Room) -> None:
        key = keys.log_key(room.name)
        cursor, seq = self._loaded.pop(key, (b"0-0", 0))
        self._feeds[key] = _Feed(room, key, cursor, seq)
        self._enqueue(_Out(key, {b"q": b"", b"o": self.node}))
        self._feeds_changed.set()
        if self._reader_id is not None:
            self._spawn(self._unblock(self._reader_id))

    async def _unblock(self, client_id: int) -> None:
        """Wake the read loop so its next ``XREAD`` includes a new room."""
        with contextlib.suppress(RedisError, OSError):  # else it wakes within READ_BLOCK_MS
            await self._redis.client_unblock(client_id)

    def closed(self, room: Room) -> None:
        feed = self._feeds.pop(keys.log_key(room.name), None)
        self._requested.pop(room.name, None)
        if feed is not None:
            for pending in feed.pending.values():
                self._pending_count -= 1
                self._backlog -= pending.size
            self._check_idle()

    # -- the read loop ------------------------------------------------------------------------

    async def _read_forever(self) -> None:
        delay = RETRY_INITIAL
        while True:
            if not self._feeds:
                self._feeds_changed.clear()
                await self._feeds_changed.wait()
                continue
            streams = {feed.key: feed.cursor for feed in self._feeds.values()}
            try:
                if self._reader_id is None:
                    self._reader_id = int(await self._reader.client_id())
                reply: Any = await self._reader.xread(
                    streams,  # type: ignore[arg-type]
                    count=READ_COUNT,
                    block=READ_BLOCK_MS,
                )
            except (RedisError, OSError) as exc:
                self._reader_id = None
                self.redis_stats.read_errors += 1
                logger.error("Redis: read failed, retrying in %.2f s: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            delay = RETRY_INITIAL
            self._note_lag(reply)
            for key, entries in reply or ():
                for entry_id, fields in entries:
                    feed = self._feeds.get(key)
                    if feed is None:
                        break
                    await self._dispatch(feed, entry_id, fields)

    def _note_lag(self, reply: Any) -> None:
        """How old the newest entry of this read is (Redis' clock in the id, ours now)."""
        newest = max((entries[-1][0] for _, entries in reply or () if entries), default=None)
        if newest is None:
            self.redis_stats.read_lag_seconds = 0.0
            return
        self.redis_stats.read_lag_seconds = max(
            0.0, time.time() - int(newest.split(b"-")[0]) / 1000
        )

    async def _dispatch(self, feed: _Feed, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        seq = keys.id_to_seq(entry_id)
        before = feed.seq
        if seq <= before:
            return  # read again after the room reopened
        feed.seq, feed.cursor = seq, entry_id
        feed.entries += 1
        self.redis_stats.entries_read += 1
        origin = fields.get(b"o")
        update = fields.get(b"u")
        if update is not None:
            if origin == self.node:
                pending = feed.pending.pop(fields.get(b"t", b""), None)
                if pending is not None:
                    if pending.written is not None and not pending.written.is_set():
                        await pending.written.wait()  # XADD returns before anyone sees it
                    if self._feeds.get(feed.key) is feed:
                        self._complete(pending, seq, feed.room.name)
                    return
            feed.room.deliver(seq, update)
            self._maybe_compact(feed)
        elif (awareness := fields.get(b"a")) is not None:
            if origin == self.node:
                feed.room.send_awareness(awareness)
            elif origin is not None:
                self._hear(feed, origin, awareness)
        elif b"q" in fields:
            if origin != self.node:
                mine = feed.room.local_awareness()
                if mine is not None:
                    self.announce(feed.room, mine)
        elif (last := fields.get(b"c")) is not None:
            feed.entries = 0
            self._requested.pop(feed.room.name, None)
            caught_up = before >= keys.id_to_seq(last)
            self._spawn(self._install_snapshot(feed, last, caught_up=caught_up))

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

    def _maybe_compact(self, feed: _Feed) -> None:
        if feed.entries >= self.settings.compact_updates:
            self._spawn(self.request_compaction(feed.room.name))

    async def _install_snapshot(self, feed: _Feed, last: bytes, *, caught_up: bool) -> None:
        """A worker compacted the room up to ``last``: serve its snapshot from now on."""
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
        for token, pending in list(feed.pending.items()):
            if pending.seq and pending.seq <= seq:
                del feed.pending[token]
                self._complete(pending, pending.seq, feed.room.name)

    # -- compaction requests ------------------------------------------------------------------

    async def compact(self, room: Room) -> None:
        await self.request_compaction(room.name)

    async def request_compaction(self, room: RoomName) -> None:
        """Queue a compaction task for the room, once per lease across every node."""
        now = time.monotonic()
        asked = self._requested.get(room)
        if asked is not None and now - asked < self.settings.compaction_lease_seconds:
            return
        self._requested[room] = now
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


class RedisCollector(Collector):
    """The Redis mode's own metrics, read at scrape time (docs/operations.md "Metrics")."""

    def __init__(self, bus: RedisBus) -> None:
        self._bus = bus

    def collect(self) -> Iterator[Metric]:
        stats = self._bus.redis_stats
        yield GaugeMetricFamily(
            "edrys_relay_redis_stream_lag_seconds",
            "Age of the newest room stream entry of the last read; 0 when caught up",
            value=stats.read_lag_seconds,
        )
        yield CounterMetricFamily(
            "edrys_relay_redis_entries_read",
            "Room stream entries this node read and dispatched",
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
