"""The asyncio side of a store: group commit in a writer thread, loads in a reader thread.

The event loop never waits on ``fsync``. :meth:`StoreWriter.append` queues an update with a
callback; at the end of the loop turn the updates queued in it go to the writer thread as one
batch, and the thread commits every batch waiting for it in one transaction (so everything
that arrived while the previous commit was in flight shares one ``fsync``). The thread hands
the committed batch straight back to the loop (``call_soon_threadsafe``), where the callbacks
run in order, and then ``after_commit`` (the server flushes its Outbox there, so what the
callbacks relayed leaves in the same loop turn). A failing commit is retried with backoff,
keeping its updates in order (docs/threats.md F5); nothing is reported as committed until it is.

The other writes (compaction, quarantine) and the store's opening and closing run in the same
thread, between batches.

:class:`WriterStats` counts commits with plain integers, and ``observe_commit`` (the store
commit latency histogram of ``/metrics``) is called once per group commit, never per update.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from queue import SimpleQueue
from typing import Any, TypeVar

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
    """Commit attempts that failed (each is retried; counted by the writer thread)."""


@dataclass(slots=True)
class _Queued:
    room: RoomName
    update: bytes
    done: Committed


@dataclass(slots=True)
class _Call:
    """Another write for the writer thread; its outcome goes to ``future``."""

    fn: Callable[..., Any]
    args: tuple[object, ...]
    future: concurrent.futures.Future[Any]


_Job = list[_Queued] | _Call | None
"""A batch of updates, another write, or None: stop."""
_NEXT = _Call(lambda: None, (), concurrent.futures.Future())
"""Marks "take the next job from the queue" in the writer thread's loop."""


class StoreWriter:
    """Serialises all writes to a store through one thread; use ``async with``.

    ``opener`` creates the store; it runs in the writer thread when the writer starts.
    ``after_commit`` runs on the loop after the callbacks of each committed batch.
    ``observe_commit`` is told the seconds each group commit took, retries included.
    """

    def __init__(
        self,
        opener: Callable[[], Store],
        *,
        retry_initial_seconds: float = 0.05,
        retry_max_seconds: float = 2.0,
        close_timeout_seconds: float = 30.0,
        after_commit: Callable[[], None] | None = None,
        observe_commit: Callable[[float], None] | None = None,
    ) -> None:
        self._opener = opener
        self._store: Store | None = None
        self._retry_initial = retry_initial_seconds
        self._retry_max = retry_max_seconds
        self._close_timeout = close_timeout_seconds
        self._after_commit = after_commit
        self._observe_commit = observe_commit
        self.stats = WriterStats()
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="edrys-store-read")
        self._jobs: SimpleQueue[_Job] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: list[_Queued] = []
        self._in_flight = 0
        """Batches handed to the thread whose callbacks have not run yet."""
        self.backlog_bytes = 0
        """Bytes queued or being committed; rooms refuse new updates above a limit."""
        self._idle: asyncio.Event | None = None

    @property
    def store(self) -> Store:
        assert self._store is not None, "store writer not started"
        return self._store

    async def __aenter__(self) -> StoreWriter:
        """Open the store (raises :class:`StoreError` if it cannot) and start committing."""
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._work, name="edrys-store-write", daemon=True)
        self._thread.start()
        try:
            self._store = await self._run(self._opener)
        except BaseException:
            self._stop_thread()
            self._reader.shutdown()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Commit what is queued (for a while if storage fails), stop, close the store."""
        if self._thread is None:
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
        self._stopping.set()  # ends a retry loop; the batch in it is dropped
        if self._store is not None:
            try:
                await self._run(self._store.close)
            finally:
                self._store = None
        self._stop_thread()
        self._reader.shutdown()

    def _stop_thread(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            self._jobs.put(None)
            thread.join()

    def append(self, room: RoomName, update: bytes, done: Committed) -> None:
        """Queue ``update``; ``done(seq)`` runs on the loop once it is durably committed."""
        if not self._queue:
            assert self._loop is not None and self._idle is not None, "store writer not started"
            self._loop.call_soon(self._hand_over)
            self._idle.clear()
        self._queue.append(_Queued(room, update, done))
        self.backlog_bytes += len(update)

    def _hand_over(self) -> None:
        """End of the loop turn: the turn's updates go to the writer thread as one batch."""
        batch, self._queue = self._queue, []
        if batch:
            self._in_flight += 1
            self._jobs.put(batch)

    async def flush(self) -> None:
        """Wait until everything queued so far (and since) is committed."""
        assert self._idle is not None, "store writer not started"
        await self._idle.wait()

    async def load(self, room: RoomName) -> list[Record]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, self.store.load, room)

    async def replace(self, room: RoomName, seqs: Sequence[int], merged: bytes) -> int:
        return await self._run(self.store.replace, room, seqs, merged)

    async def quarantine(self, room: RoomName, seqs: Sequence[int], reason: str) -> None:
        await self._run(self.store.quarantine, room, seqs, reason)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` in the writer thread, between batches."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put(_Call(fn, args, future))
        return await asyncio.wrap_future(future)

    # -- the writer thread --------------------------------------------------------------------

    def _work(self) -> None:
        jobs = self._jobs
        job = jobs.get()
        while job is not None:
            if isinstance(job, _Call):
                self._call(job)
                job = jobs.get()
                continue
            # Every batch handed over while the previous commit ran shares this transaction.
            batches, job = [job], _NEXT
            while not jobs.empty():
                more = jobs.get()
                if not isinstance(more, list):
                    job = more
                    break
                batches.append(more)
            self._commit(batches)
            if job is _NEXT:
                job = jobs.get()

    def _call(self, call: _Call) -> None:
        if not call.future.set_running_or_notify_cancel():
            return
        try:
            result = call.fn(*call.args)
        except BaseException as exc:
            call.future.set_exception(exc)
        else:
            call.future.set_result(result)

    def _commit(self, batches: list[list[_Queued]]) -> None:
        pairs = [(q.room, q.update) for batch in batches for q in batch]
        delay = self._retry_initial
        started = time.perf_counter()
        while True:
            try:
                seqs = self.store.append(pairs)
                break
            except StoreError as exc:
                self.stats.failures += 1
                logger.error(
                    "commit of %d updates failed, retrying in %.2f s: %s",
                    len(pairs),
                    delay,
                    exc,
                    extra={"event": "store.commit_failed", "updates": len(pairs), "retry": delay},
                )
            except Exception:
                # Not the store's own error: keep the thread (and the updates' order) alive.
                self.stats.failures += 1
                logger.exception(
                    "commit of %d updates failed, retrying in %.2f s",
                    len(pairs),
                    delay,
                    extra={"event": "store.commit_failed", "updates": len(pairs), "retry": delay},
                )
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, self._retry_max)
        took = time.perf_counter() - started
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is left to tell
            self._loop.call_soon_threadsafe(self._committed, batches, seqs, took)

    # -- back on the loop ---------------------------------------------------------------------

    def _committed(self, batches: list[list[_Queued]], seqs: list[int], took: float) -> None:
        if self._observe_commit is not None:
            self._observe_commit(took)
        stats = self.stats
        stats.commits += 1
        done = iter(seqs)
        for batch in batches:
            for queued in batch:
                size = len(queued.update)
                self.backlog_bytes -= size
                stats.updates += 1
                stats.bytes += size
                try:
                    queued.done(next(done))
                except Exception:
                    # A broken callback must not wedge the commits of every other room.
                    label = room_label(queued.room)
                    logger.exception(
                        "after-commit callback failed for room %s",
                        label,
                        extra={"event": "store.callback_failed", "room": label},
                    )
        self._in_flight -= len(batches)
        if self._after_commit is not None:
            try:
                self._after_commit()
            except Exception:
                logger.exception(
                    "after-commit hook failed", extra={"event": "store.after_commit_failed"}
                )
        if not self._in_flight and not self._queue:
            assert self._idle is not None
            self._idle.set()


__all__ = ["Committed", "StoreWriter", "WriterStats"]
