"""Compaction of room streams, by whichever node takes the task (docs/deployment.md).

Tasks are entries of one stream (``keys.TASKS``) read through a consumer group, so each task
goes to one node. A node that dies holding a task leaves it pending; after
``compaction_lease_seconds`` another node takes it over with ``XAUTOCLAIM``. A task reads
the snapshot and the stream in one transaction, merges them in a thread (the byte-faithful
codec: JSON key order survives, protocols.md §2.9), then one Lua script, atomic in Redis,
stores the snapshot with its last stream id, trims the stream with ``XTRIM MINID`` (never
``DEL``, which would reset the stream's ids) and appends a marker telling every node to
install the snapshot. The script refuses a snapshot older than the stored one, so a slow
worker whose task was taken over cannot undo a newer compaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from edrys_relay.cluster import keys
from edrys_relay.config import Settings
from edrys_relay.protocol import yupdate
from edrys_relay.protocol.errors import ProtocolError
from edrys_relay.protocol.routing import RoomName
from edrys_relay.security.redaction import room_label

logger = logging.getLogger(__name__)

MAX_ENTRIES = 100_000
"""Stream entries one task merges; a longer stream is compacted again right after."""
BLOCK_MS = 2000
RETRY_SECONDS = 1.0

_STORE = """
local function newer(a, b)
  local am, an = string.match(a, '(%d+)-(%d+)')
  local bm, bn = string.match(b, '(%d+)-(%d+)')
  am, an, bm, bn = tonumber(am), tonumber(an), tonumber(bm), tonumber(bn)
  return am > bm or (am == bm and an > bn)
end
local stored = redis.call('HGET', KEYS[1], 'last')
if stored and not newer(ARGV[2], stored) then
  return 0
end
redis.call('HSET', KEYS[1], 'data', ARGV[1], 'last', ARGV[2])
redis.call('XTRIM', KEYS[2], 'MINID', ARGV[3])
redis.call('XADD', KEYS[2], '*', 'c', ARGV[2])
return 1
"""


class CompactionWorker:
    """Takes compaction tasks from the group, one at a time."""

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        node: bytes,
        request: Callable[[RoomName], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self._redis = redis
        self._node = node
        self._request = request
        self._store = redis.register_script(_STORE)
        self.compactions = 0

    async def prepare(self) -> None:
        """Create the task stream and its consumer group if they do not exist yet."""
        try:
            await self._redis.xgroup_create(keys.TASKS, keys.WORKERS, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run_forever(self) -> None:
        while True:
            try:
                task = await self._next_task()
                if task is not None:
                    await self._run(*task)
            except (RedisError, OSError) as exc:
                logger.error("Redis: compaction worker: %s", exc)
                await asyncio.sleep(RETRY_SECONDS)

    async def _next_task(self) -> tuple[bytes, RoomName] | None:
        """A task another node left unfinished for a lease, else a new one (waits a while)."""
        lease_ms = int(self.settings.compaction_lease_seconds * 1000)
        reply = await self._redis.xautoclaim(
            keys.TASKS, keys.WORKERS, self._node, lease_ms, start_id="0-0", count=1
        )
        entries = reply[1]
        if entries:
            logger.info("took over an unfinished compaction task")
        else:
            found: Any = await self._redis.xreadgroup(
                keys.WORKERS.decode(),
                self._node.decode(),
                {keys.TASKS: b">"},
                count=1,
                block=BLOCK_MS,
            )
            entries = found[0][1] if found else []
        for task_id, fields in entries:
            if fields and b"room" in fields:
                return task_id, RoomName(fields[b"room"].decode())
            await self._done(task_id, None)  # trimmed away or malformed
        return None

    async def _done(self, task_id: bytes, room: RoomName | None) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.xack(keys.TASKS, keys.WORKERS, task_id)
        pipe.xdel(keys.TASKS, task_id)
        if room is not None:
            pipe.delete(keys.task_key(room))
        await pipe.execute()

    async def _run(self, task_id: bytes, room: RoomName) -> None:
        log, snap = keys.log_key(room), keys.snapshot_key(room)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hmget(snap, [b"data", b"last"])
        pipe.xrange(log, b"-", b"+", count=MAX_ENTRIES)
        (data, stored), entries = await pipe.execute()
        if not entries or (stored is not None and entries[-1][0] == stored):
            await self._done(task_id, room)
            return
        updates = [data] if data is not None else []
        updates += [fields[b"u"] for _, fields in entries if b"u" in fields]
        last = entries[-1][0]
        try:
            merged = await asyncio.to_thread(_merge, updates)
        except ProtocolError as exc:
            logger.error(
                "room %s: cannot merge its stream, left unmerged: %s", room_label(room), exc
            )
            await self._done(task_id, room)
            return
        stored_now = await self._store(keys=[snap, log], args=[merged, last, keys.next_id(last)])
        await self._done(task_id, room)
        if stored_now:
            self.compactions += 1
            logger.info(
                "room %s compacted %d stream entries into %d bytes",
                room_label(room),
                len(entries),
                len(merged),
            )
        if len(entries) >= MAX_ENTRIES:
            await self._request(room)


def _merge(updates: list[bytes]) -> bytes:
    """The byte-faithful merge of ``updates`` (CPU-bound: runs in a thread)."""
    if not updates:
        return yupdate.EMPTY_UPDATE
    return yupdate.merge_updates(updates)


__all__ = ["CompactionWorker"]
