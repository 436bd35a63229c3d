"""The room bus: where a room's updates get their order and durability, and how its awareness
reaches every connection of the room (docs/design.md "Room bus").

Rooms never relay an update before the bus says it may be delivered, and never know whether
that order comes from this process or from elsewhere. :class:`LocalBus` is the single process:
the store writer commits (group commit, ``storage/writer.py``) and numbers updates, and
awareness goes straight to the room's own connections. The Redis bus
(``edrys_relay.cluster``) implements the same protocol for many processes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from edrys_relay.protocol import history
from edrys_relay.protocol.errors import ProtocolError
from edrys_relay.protocol.routing import RoomName
from edrys_relay.storage.base import Record, StoreError
from edrys_relay.storage.writer import Committed, StoreWriter, WriterStats

if TYPE_CHECKING:
    from edrys_relay.server.rooms import Room

logger = logging.getLogger(__name__)


class RoomBus(Protocol):
    """What a :class:`~edrys_relay.server.rooms.RoomHub` and its rooms need from below."""

    @property
    def backlog_bytes(self) -> int:
        """Bytes of updates appended but not yet deliverable; rooms refuse more above a limit."""
        ...

    @property
    def stats(self) -> WriterStats:
        """Updates made durable and failed attempts since start (``/metrics``)."""
        ...

    def append(self, room: RoomName, update: bytes, done: Committed) -> None:
        """Make ``update`` durable; ``done(seq)`` runs on the loop once it may be delivered.

        ``seq`` orders the room's history; callbacks of one room run in append order.
        """
        ...

    def announce(self, room: Room, update: bytes) -> None:
        """An awareness update (changes made by this process's clients) for everyone in ``room``."""
        ...

    async def load(self, room: RoomName) -> list[Record]:
        """The room's durable history (raises :class:`StoreError`)."""
        ...

    async def quarantine(self, room: RoomName, seqs: Sequence[int], reason: str) -> None: ...

    async def compact(self, room: Room) -> None:
        """Merge (or have merged) the room's history; never raises for a failed merge."""
        ...

    def opened(self, room: Room) -> None:
        """``room`` is loaded and serving."""
        ...

    def closed(self, room: Room) -> None:
        """``room`` is unloaded."""
        ...

    async def flush(self) -> None:
        """Wait until everything appended so far may be delivered (and has been)."""
        ...

    async def start(self) -> None: ...

    async def aclose(self) -> None:
        """Deliver what is pending if possible, then release everything."""
        ...


class LocalBus:
    """One process: the store writer orders and commits, awareness stays in the process."""

    def __init__(self, writer: StoreWriter) -> None:
        self.writer = writer
        self.append = writer.append
        """The hot path calls the writer directly: the local bus adds no call per update."""

    @property
    def backlog_bytes(self) -> int:
        return self.writer.backlog_bytes

    @property
    def stats(self) -> WriterStats:
        return self.writer.stats

    def announce(self, room: Room, update: bytes) -> None:
        room.send_awareness(update)

    async def load(self, room: RoomName) -> list[Record]:
        return await self.writer.load(room)

    async def quarantine(self, room: RoomName, seqs: Sequence[int], reason: str) -> None:
        await self.writer.quarantine(room, seqs, reason)

    async def compact(self, room: Room) -> None:
        """Merge the committed history in a thread, then replace exactly those records."""
        job = room.history.compaction_job()
        if job is None or room.compaction_failed:
            return
        try:
            merged = await asyncio.to_thread(history.merge, job)
            seq = await self.writer.replace(room.name, job.seqs, merged.data)
        except ProtocolError as exc:
            room.compaction_failed = True
            logger.error(
                "room %s: cannot merge its history, serving it unmerged: %s",
                room.label,
                exc,
                extra={"event": "room.compaction_failed", "room": room.label},
            )
            return
        except StoreError as exc:
            logger.error(
                "room %s: compaction not stored, will retry later: %s",
                room.label,
                exc,
                extra={"event": "room.compaction_not_stored", "room": room.label},
            )
            return
        room.history.compacted(job, seq, merged)
        logger.info(
            "room %s compacted %d records into one of %d bytes",
            room.label,
            len(job.seqs),
            len(merged.data),
            extra={
                "event": "room.compacted",
                "room": room.label,
                "records": len(job.seqs),
                "bytes": len(merged.data),
            },
        )

    def opened(self, room: Room) -> None:
        pass

    def closed(self, room: Room) -> None:
        pass

    async def flush(self) -> None:
        await self.writer.flush()

    async def start(self) -> None:
        await self.writer.__aenter__()

    async def aclose(self) -> None:
        await self.writer.aclose()


__all__ = ["LocalBus", "RoomBus"]
