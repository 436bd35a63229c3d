"""The asyncio side of a store: group commit in a writer thread, loads in a reader thread.

The event loop never waits on ``fsync``. :meth:`StoreWriter.append` queues an update with a
callback; one task commits everything queued so far in one transaction (every update that
arrived during one loop turn, plus all that arrived while the previous commit was in flight),
then runs the callbacks in order on the loop. A failing commit is retried with backoff, keeping
its updates in order (docs/threats.md F5); nothing is reported as committed until it is.

:class:`WriterStats` counts commits with plain integers, and ``observe_commit`` (the store
commit latency histogram of ``/metrics``) is called once per group commit, never per update.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from edrys_relay.protocol.routing import RoomName
from edrys_relay.security.redaction import room_label
from edrys_relay.storage.base import Record, Store, StoreError

logger = logging.getLogger(__name__)

T = TypeVar("T")
Committed = Callable[[int], None]


@dataclass(slots=True)
class WriterStats:
    """Totals since start (``/metrics``)."""

    commits: int = 0
    """Group commits (transactions) that succeeded."""
    updates: int = 0
    bytes: int = 0
    failures: int = 0
    """Commit attempts that failed (each is retried)."""


@dataclass(slots=True)
class _Queued:
    room: RoomName
    update: bytes
    done: Committed


class StoreWriter:
    """Serialises all writes to a store through one thread; use ``async with``.

    ``opener`` creates the store; it runs in the writer thread when the writer starts.
    ``observe_commit`` is told the seconds each group commit took, retries included.
    """

    def __init__(
        self,
        opener: Callable[[], Store],
        *,
        retry_initial_seconds: float = 0.05,
        retry_max_seconds: float = 2.0,
        close_timeout_seconds: float = 30.0,
        observe_commit: Callable[[float], None] | None = None,
    ) -> None:
        self._opener = opener
        self._store: Store | None = None
        self._retry_initial = retry_initial_seconds
        self._retry_max = retry_max_seconds
        self._close_timeout = close_timeout_seconds
        self._observe_commit = observe_commit
        self.stats = WriterStats()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="edrys-store-write")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="edrys-store-read")
        self._queue: list[_Queued] = []
        self.backlog_bytes = 0
        """Bytes queued or being committed; rooms refuse new updates above a limit."""
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    @property
    def store(self) -> Store:
        assert self._store is not None, "store writer not started"
        return self._store

    async def __aenter__(self) -> StoreWriter:
        """Open the store (raises :class:`StoreError` if it cannot) and start committing."""
        try:
            self._store = await self._run(self._opener)
        except BaseException:
            self._shutdown_threads()
            raise
        self._task = asyncio.create_task(self._commit_forever(), name="store-writer")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Commit what is queued (for a while if storage fails), stop, close the store."""
        if self._task is None:
            return
        try:
            async with asyncio.timeout(self._close_timeout):
                await self.flush()
        except TimeoutError:
            # Never relayed, so no other client saw them; their senders still hold them.
            logger.error(
                "closing with %d bytes of updates not committed",
                self.backlog_bytes,
                extra={"event": "store.unflushed", "backlog_bytes": self.backlog_bytes},
            )
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        await self._run(self.store.close)
        self._store = None
        self._shutdown_threads()

    def _shutdown_threads(self) -> None:
        self._writer.shutdown()
        self._reader.shutdown()

    def append(self, room: RoomName, update: bytes, done: Committed) -> None:
        """Queue ``update``; ``done(seq)`` runs on the loop once it is durably committed."""
        self._queue.append(_Queued(room, update, done))
        self.backlog_bytes += len(update)
        self._idle.clear()
        self._wakeup.set()

    async def flush(self) -> None:
        """Wait until everything queued so far (and since) is committed."""
        await self._idle.wait()

    async def load(self, room: RoomName) -> list[Record]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, self.store.load, room)

    async def replace(self, room: RoomName, seqs: Sequence[int], merged: bytes) -> int:
        return await self._run(self.store.replace, room, seqs, merged)

    async def quarantine(self, room: RoomName, seqs: Sequence[int], reason: str) -> None:
        await self._run(self.store.quarantine, room, seqs, reason)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, fn, *args)

    async def _commit_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._queue = self._queue, []
            if batch:
                await self._commit(batch)
            if not self._queue:
                self._idle.set()

    async def _commit(self, batch: list[_Queued]) -> None:
        delay = self._retry_initial
        pairs = [(q.room, q.update) for q in batch]
        started = time.perf_counter()
        while True:
            try:
                seqs = await self._run(self.store.append, pairs)
                break
            except StoreError as exc:
                self.stats.failures += 1
                logger.error(
                    "commit of %d updates failed, retrying in %.2f s: %s",
                    len(batch),
                    delay,
                    exc,
                    extra={"event": "store.commit_failed", "updates": len(batch), "retry": delay},
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max)
        if self._observe_commit is not None:
            self._observe_commit(time.perf_counter() - started)
        size = sum(len(q.update) for q in batch)
        self.backlog_bytes -= size
        stats = self.stats
        stats.commits += 1
        stats.updates += len(batch)
        stats.bytes += size
        for queued, seq in zip(batch, seqs, strict=True):
            try:
                queued.done(seq)
            except Exception:
                # A broken callback must not wedge the commits of every other room.
                label = room_label(queued.room)
                logger.exception(
                    "after-commit callback failed for room %s",
                    label,
                    extra={"event": "store.callback_failed", "room": label},
                )


__all__ = ["Committed", "StoreWriter", "WriterStats"]
