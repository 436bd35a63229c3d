"""An in-process store: ``--store memory``. Nothing survives a restart of the server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from edrys_relay.protocol.routing import RoomName
from edrys_relay.storage.base import Record, RoomInfo


class MemoryStore:
    """Room histories in dictionaries, guarded by one lock (storage threads share it)."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._rooms: dict[RoomName, dict[int, Record]] = {}
        self._times: dict[RoomName, float] = {}
        self._quarantine: dict[RoomName, list[Record]] = {}
        self._seq = 0

    def load(self, room: RoomName) -> list[Record]:
        with self._lock:
            return sorted(self._rooms.get(room, {}).values(), key=lambda r: r.seq)

    def append(self, updates: Sequence[tuple[RoomName, bytes]]) -> list[int]:
        seqs = []
        with self._lock:
            now = self._clock()
            for room, update in updates:
                self._seq += 1
                self._rooms.setdefault(room, {})[self._seq] = Record(self._seq, bytes(update))
                self._times[room] = now
                seqs.append(self._seq)
        return seqs

    def replace(self, room: RoomName, seqs: Sequence[int], merged: bytes) -> int:
        seq = max(seqs)
        with self._lock:
            records = self._rooms.setdefault(room, {})
            for old in seqs:
                records.pop(old, None)
            records[seq] = Record(seq, bytes(merged), merged=True)
            self._times[room] = self._clock()
        return seq

    def quarantine(self, room: RoomName, seqs: Sequence[int], reason: str) -> None:
        with self._lock:
            records = self._rooms.get(room, {})
            moved = [records.pop(seq) for seq in seqs if seq in records]
            self._quarantine.setdefault(room, []).extend(moved)
            if not records:
                self._forget(room)

    def quarantined(self, room: RoomName) -> list[Record]:
        with self._lock:
            return list(self._quarantine.get(room, []))

    def rooms(self) -> list[RoomInfo]:
        with self._lock:
            return [
                RoomInfo(
                    name=name,
                    records=len(records),
                    size_bytes=sum(len(r.update) for r in records.values()),
                    last_activity=self._times[name],
                )
                for name, records in sorted(self._rooms.items())
                if records
            ]

    def delete(self, room: RoomName) -> bool:
        with self._lock:
            existed = bool(self._rooms.get(room))
            self._forget(room)
            return existed

    def _forget(self, room: RoomName) -> None:
        self._rooms.pop(room, None)
        self._times.pop(room, None)

    def close(self) -> None:
        """Nothing to release."""


__all__ = ["MemoryStore"]
