"""Offline room operations behind ``edrys-relay rooms|export|import|compact`` (no printing).

They work on a store directly, so they are meant for a stopped server; running them next to a
live server is safe for the data (each is one transaction, and compaction replaces only the
records it merged) but the server only sees imported or merged records after the room reloads.
"""

from __future__ import annotations

from dataclasses import dataclass

from edrys_relay.protocol import yupdate
from edrys_relay.protocol.routing import RoomName
from edrys_relay.protocol.ydoc import TrackedDoc, check_update, replay
from edrys_relay.storage.base import Record, Store


class NoSuchRoom(LookupError):
    """The store holds no record for this room."""


@dataclass(frozen=True, slots=True)
class Compaction:
    room: RoomName
    records_before: int
    records_after: int
    bytes_before: int
    bytes_after: int
    quarantined: int


def _valid_records(store: Store, room: RoomName) -> tuple[list[Record], list[Record]]:
    records = store.load(room)
    if not records:
        raise NoSuchRoom(room)
    doc, good, bad = replay(records)
    doc.close()
    return good, bad


def export_room(store: Store, room: RoomName) -> bytes:
    """The room's document as one Yjs update (``Y.applyUpdate`` accepts it), byte-faithful."""
    good, _bad = _valid_records(store, room)
    return yupdate.merge_updates([record.update for record in good])


def import_update(store: Store, room: RoomName, update: bytes) -> int:
    """Append a Yjs update to a room after checking it; returns its seq.

    Raises:
        ProtocolError: the bytes are not a Yjs v1 update (pycrdt or the codec refuses them).
    """
    doc = TrackedDoc()
    try:
        check_update(doc, update)
    finally:
        doc.close()
    (seq,) = store.append([(room, update)])
    return seq


def compact_room(store: Store, room: RoomName) -> Compaction:
    """Merge a room's records into one; refused records are quarantined first."""
    good, bad = _valid_records(store, room)
    if bad:
        store.quarantine(room, [record.seq for record in bad], "refused by compaction")
    before = sum(len(record.update) for record in good)
    if len(good) < 2:
        return Compaction(room, len(good), len(good), before, before, len(bad))
    merged = yupdate.merge_updates([record.update for record in good])
    store.replace(room, [record.seq for record in good], merged)
    return Compaction(room, len(good), 1, before, len(merged), len(bad))


__all__ = ["Compaction", "NoSuchRoom", "compact_room", "export_room", "import_update"]
