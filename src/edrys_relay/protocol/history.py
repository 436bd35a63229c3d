"""A room's committed history as it is served: one merged record, then the newer records.

Sans-I/O: no threads, no sockets. Rooms answer a client's sync step 1 from here (protocols.md
§2.9): what the merged record holds beyond the client's state vector (``diff_update``, computed
by the byte-faithful codec, never by pycrdt), then every newer original update, then an empty
step 2 on which the client marks itself synced. Compaction folds a prefix of this history into
a new merged record; records committed while the merge ran stay in the tail, so none is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edrys_relay.protocol import yjs, yupdate


@dataclass(frozen=True, slots=True)
class Record:
    """One entry of a room's committed history, as storage keeps it (``storage/base.py``)."""

    seq: int
    update: bytes
    merged: bool = False
    """True for a compacted record that stands for several earlier ones."""


@dataclass(frozen=True, slots=True)
class CompactionJob:
    """What to merge: these records (``seqs``), whose updates are ``updates`` in order."""

    seqs: tuple[int, ...]
    updates: tuple[bytes, ...]


def merge(job: CompactionJob) -> yupdate.ParsedUpdate:
    """Run a compaction job (CPU-bound: call it in a thread).

    Raises:
        MalformedMessage: a record is not a valid Yjs update for the codec.
    """
    return yupdate.parse_update(yupdate.merge_updates(job.updates))


class RoomHistory:
    """The merged record (if any) and the records committed after it, in seq order."""

    __slots__ = ("_merged", "_merged_seq", "_tail", "size_bytes")

    def __init__(self, records: Sequence[Record] = ()) -> None:
        self._merged: yupdate.ParsedUpdate | None = None
        self._merged_seq = 0
        self._tail: list[Record] = []
        self.size_bytes = 0
        for record in records:
            self.add(record)

    def add(self, record: Record) -> None:
        """Take a committed record (the first merged record becomes the served snapshot)."""
        if record.merged and self._merged is None and not self._tail:
            self._merged = yupdate.parse_update(record.update)
            self._merged_seq = record.seq
        else:
            self._tail.append(record)
        self.size_bytes += len(record.update)

    @property
    def record_count(self) -> int:
        return len(self._tail) + (self._merged is not None)

    @property
    def tail_count(self) -> int:
        return len(self._tail)

    @property
    def tail_bytes(self) -> int:
        return self.size_bytes - (len(self._merged.data) if self._merged else 0)

    def sync_answer(self, state_vector: bytes) -> list[bytes]:
        """The messages that answer a sync step 1 carrying ``state_vector``."""
        messages = []
        if self._merged is not None:
            missing = yupdate.diff_update(self._merged, state_vector)
            if missing != yupdate.EMPTY_UPDATE:
                messages.append(yjs.encode_sync_update(missing))
        messages.extend(yjs.encode_sync_update(record.update) for record in self._tail)
        messages.append(yjs.encode_sync_step2(yjs.EMPTY_UPDATE))
        return messages

    def compaction_job(self) -> CompactionJob | None:
        """Everything committed so far, if there is more than one record to merge."""
        if self.record_count < 2:
            return None
        seqs = [record.seq for record in self._tail]
        updates = [record.update for record in self._tail]
        if self._merged is not None:
            seqs.insert(0, self._merged_seq)
            updates.insert(0, self._merged.data)
        return CompactionJob(tuple(seqs), tuple(updates))

    def compacted(self, job: CompactionJob, seq: int, merged: yupdate.ParsedUpdate) -> None:
        """Install the result of ``job`` (stored as record ``seq``); keep newer records."""
        done = set(job.seqs)
        self._tail = [record for record in self._tail if record.seq not in done]
        self._merged = merged
        self._merged_seq = seq
        self.size_bytes = len(merged.data) + sum(len(record.update) for record in self._tail)

    def compacted_through(self, seq: int, merged: yupdate.ParsedUpdate) -> None:
        """Install a merged record made elsewhere that stands for every record up to ``seq``."""
        seqs = [record.seq for record in self._tail if record.seq <= seq]
        if self._merged is not None:
            seqs.append(self._merged_seq)
        self.compacted(CompactionJob(tuple(seqs), ()), seq, merged)


__all__ = ["CompactionJob", "Record", "RoomHistory", "merge"]
