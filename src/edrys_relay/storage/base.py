"""The one interface every storage backend implements, with one contract test for all of them.

A room's history is a list of records in commit order. A record is either one update exactly
as a client sent it, or a *merged* record that replaced a run of earlier records (compaction).
Records are addressed by ``seq``, a number the store assigns that only ever grows; no wall
clock decides order or what to keep (docs/threats.md F11). Room names are keys, never paths
(docs/threats.md V13).

Backends are synchronous and blocking: the server calls them from its storage threads
(``storage/writer.py``), never from the event loop. A backend must be safe to call from one
writer thread and one reader thread at the same time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from edrys_relay.protocol.history import Record
from edrys_relay.protocol.routing import RoomName


class StoreError(Exception):
    """The store cannot do what was asked (I/O error, disk full, locked database...)."""


class SchemaTooNew(StoreError):
    """The data was written by a newer edrys-relay; refuse it rather than mangle it."""


@dataclass(frozen=True, slots=True)
class RoomInfo:
    name: RoomName
    records: int
    size_bytes: int
    last_activity: float
    """Wall-clock time (Unix seconds) of the newest record; informational only."""


class Store(Protocol):
    """Durable (or in-memory) room histories."""

    def load(self, room: RoomName) -> list[Record]:
        """All records of ``room`` in ``seq`` order; empty for an unknown room."""
        ...

    def append(self, updates: Sequence[tuple[RoomName, bytes]]) -> list[int]:
        """Commit all ``updates`` in one transaction (group commit); return their seqs.

        When this returns, the records are durable as far as the backend can make them.
        """
        ...

    def replace(self, room: RoomName, seqs: Sequence[int], merged: bytes) -> int:
        """Atomically replace exactly the records ``seqs`` of ``room`` by one merged record.

        Records not listed (for instance, appended while the merge ran) are left alone. The
        merged record takes the largest replaced seq, so it sorts before every later record.
        Returns that seq.
        """
        ...

    def quarantine(self, room: RoomName, seqs: Sequence[int], reason: str) -> None:
        """Move records that failed to load out of the room's history, keeping their bytes."""
        ...

    def quarantined(self, room: RoomName) -> list[Record]:
        """Records of ``room`` moved aside by :meth:`quarantine`."""
        ...

    def rooms(self) -> list[RoomInfo]:
        """Every room with at least one record, by name."""
        ...

    def delete(self, room: RoomName) -> bool:
        """Forget a room's history; False if there was none."""
        ...

    def close(self) -> None:
        """Release resources; pending work is already committed."""
        ...


__all__ = ["Record", "RoomInfo", "SchemaTooNew", "Store", "StoreError"]
