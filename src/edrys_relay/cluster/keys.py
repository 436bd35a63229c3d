"""Every Redis key edrys-relay uses (docs/deployment.md "Redis keys"), and stream-id helpers.

Keys start with the kind, then the name, so no two names of one kind or of different kinds
can collide (a room name may contain ``:``); names are bytes in keys, never parsed back.
"""

from __future__ import annotations

PREFIX = b"edrys:"
TASKS = PREFIX + b"compact"
"""Stream of compaction tasks, one entry per requested room; consumer group ``WORKERS``."""
WORKERS = b"workers"

_SEQ_BITS = 32


def log_key(room: str) -> bytes:
    """The room's stream: updates, awareness, awareness queries and compaction markers."""
    return PREFIX + b"log:" + room.encode()


def snapshot_key(room: str) -> bytes:
    """Hash ``data`` (merged update) and ``last`` (the last stream id merged into it)."""
    return PREFIX + b"snap:" + room.encode()


def task_key(room: str) -> bytes:
    """Set while a compaction of the room is requested (expires with the lease)."""
    return PREFIX + b"task:" + room.encode()


def quarantine_key(room: str) -> bytes:
    """Stream of records moved out of the room's history because they failed to load."""
    return PREFIX + b"quarantine:" + room.encode()


def node_key(node: bytes) -> bytes:
    """A node's heartbeat; its expiry means the node is gone."""
    return PREFIX + b"node:" + node


def topic_channel(topic: str) -> bytes:
    """Pub/sub channel of one y-webrtc signaling topic."""
    return PREFIX + b"sig:" + topic.encode()


def stream_channel(room_id: str) -> bytes:
    """Pub/sub channel of one ``/stream`` room: frames and source announcements."""
    return PREFIX + b"stream:" + room_id.encode()


def source_key(room_id: str) -> bytes:
    """The node that holds the ``/stream`` room's source (one source per room, all nodes)."""
    return PREFIX + b"source:" + room_id.encode()


def id_to_seq(entry_id: bytes) -> int:
    """A stream id ``ms-n`` as one integer that sorts the same way (a record's ``seq``)."""
    ms, _, n = entry_id.partition(b"-")
    return (int(ms) << _SEQ_BITS) | int(n)


def seq_to_id(seq: int) -> bytes:
    return b"%d-%d" % (seq >> _SEQ_BITS, seq & ((1 << _SEQ_BITS) - 1))


def next_id(entry_id: bytes) -> bytes:
    """The smallest id after ``entry_id`` (``XTRIM MINID`` keeps ids from it on)."""
    return seq_to_id(id_to_seq(entry_id) + 1)
