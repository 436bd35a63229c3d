"""Chunk framing of Edrys' y-webrtc fork on the data channel (protocols.md §4.6).

Every data-channel message of the fork is one chunk of an application message, preceded by a
40-byte header of five signed 64-bit big-endian integers:

====== ==== =================================================================================
offset size field
====== ==== =================================================================================
0      8    ``tx_ord``: the sender's per-connection message counter (0, 1, 2, …)
8      8    ``index``: 0-based chunk number
16     8    ``length``: number of chunks of this message
24     8    ``total_size``: byte length of the whole application message
32     8    ``chunk_size``: byte length of this chunk (= data-channel message length - 40)
====== ==== =================================================================================

The sender cuts a message into chunks of :data:`CHUNK_SIZE` (15 872) bytes, the last one shorter;
a zero-length message produces no chunk at all.

:class:`ChunkEncoder` frames outgoing messages (one per connection: it owns the ``tx_ord``
counter). :class:`Reassembler` (also one per connection) validates incoming chunks and returns
each application message once all its chunks have arrived. It is stricter than the JS receiver,
which trusts every header: fields must be consistent, sizes bounded, and a duplicate chunk is
ignored instead of being concatenated twice.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Final, Literal

from edrys_relay.protocol.errors import MalformedMessage, MessageTooBig, PolicyViolation

HEADER_SIZE: Final = 40
#: Chunk payload size used by the fork's sender: 16 KiB minus 512 bytes.
CHUNK_SIZE: Final = 16 * 1024 - 512
#: Largest data-channel message the fork sends: header + one full chunk.
MAX_PACKET_SIZE: Final = HEADER_SIZE + CHUNK_SIZE
#: Highest counter value a JS number represents exactly.
MAX_TX_ORD: Final = 2**53 - 1

#: Default bound on one reassembled application message (16 MiB).
DEFAULT_MAX_MESSAGE_SIZE: Final = 16 * 1024 * 1024
#: Default bound on messages whose chunks are still incomplete.
DEFAULT_MAX_PENDING_MESSAGES: Final = 16
#: Default bound on the bytes held for incomplete messages.
DEFAULT_MAX_PENDING_BYTES: Final = 32 * 1024 * 1024
#: How many completed ``tx_ord`` values are remembered to drop late duplicates.
DEFAULT_COMPLETED_MEMORY: Final = 1024

_HEADER = struct.Struct(">qqqqq")


@dataclass(frozen=True, slots=True)
class ChunkHeader:
    """The five header fields of one chunk."""

    tx_ord: int
    index: int
    length: int
    total_size: int
    chunk_size: int

    def pack(self) -> bytes:
        """Return the 40-byte header."""
        return _HEADER.pack(self.tx_ord, self.index, self.length, self.total_size, self.chunk_size)


def encode_packet(header: ChunkHeader, chunk: bytes) -> bytes:
    """Return one data-channel message: ``header`` followed by ``chunk``."""
    if len(chunk) != header.chunk_size:
        raise ValueError("chunk length differs from header.chunk_size")
    return header.pack() + chunk


def decode_packet(packet: bytes | bytearray | memoryview) -> tuple[ChunkHeader, bytes]:
    """Split a data-channel message into its header and chunk, validating the header alone.

    Raises :class:`MalformedMessage` if the message is shorter than the header, a field is
    negative or out of range, ``chunk_size`` differs from the bytes present, or the fields
    contradict each other (``index >= length``, chunk larger than the message, a single-chunk
    message whose chunk is not the whole message, ...).
    """
    if len(packet) < HEADER_SIZE:
        raise MalformedMessage("data-channel message shorter than the 40-byte chunk header")
    header = ChunkHeader(*_HEADER.unpack_from(packet, 0))
    chunk = bytes(packet[HEADER_SIZE:])
    if not 0 <= header.tx_ord <= MAX_TX_ORD:
        raise MalformedMessage("chunk txOrd out of range")
    if header.chunk_size != len(chunk):
        raise MalformedMessage("chunk size field differs from the bytes received")
    if header.chunk_size < 1 or header.total_size < 1:
        raise MalformedMessage("empty chunk or empty message")
    if header.length < 1 or not 0 <= header.index < header.length:
        raise MalformedMessage("chunk index/length out of range")
    if header.chunk_size > header.total_size or header.length > header.total_size:
        raise MalformedMessage("chunk fields exceed the message size")
    if (header.length == 1) != (header.chunk_size == header.total_size):
        raise MalformedMessage("single-chunk message whose chunk is not the whole message")
    return header, chunk


def detect_framing(first_packet: bytes | bytearray | memoryview) -> Literal["edrys", "plain"]:
    """Which data-channel framing a peer uses, from the first message it sent on the channel.

    Both y-webrtc flavours open with their sync step 1. Framed by the fork it is the first
    chunk of a message: a header whose fields agree with each other and with the bytes
    received, with ``index`` 0 (``tx_ord`` need not be 0: the fork counts the empty messages
    it never sends). Unframed it is ``00 00`` and the state vector; bytes 32-39 would have to
    hold exactly the message's length minus 40, bytes 8-15 an index below bytes 16-23, and so
    on, which a y-protocols message does not do.
    """
    try:
        header, _ = decode_packet(first_packet)
    except MalformedMessage:
        return "plain"
    return "edrys" if header.index == 0 else "plain"


def split_message(message: bytes, tx_ord: int, chunk_size: int = CHUNK_SIZE) -> list[bytes]:
    """Frame ``message`` as the fork's sender does, with the given ``tx_ord``.

    Returns the data-channel messages in order; an empty ``message`` gives an empty list.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    if not 0 <= tx_ord <= MAX_TX_ORD:
        raise ValueError("tx_ord out of range")
    total = len(message)
    count = -(-total // chunk_size)
    packets = []
    for index in range(count):
        chunk = message[index * chunk_size : (index + 1) * chunk_size]
        header = ChunkHeader(tx_ord, index, count, total, len(chunk))
        packets.append(header.pack() + bytes(chunk))
    return packets


class ChunkEncoder:
    """Frames outgoing application messages for one data channel (owns the ``tx_ord`` counter).

    Like the fork, the counter advances for every message passed in, including empty ones, which
    produce no packets.
    """

    __slots__ = ("chunk_size", "next_tx_ord")

    def __init__(self, chunk_size: int = CHUNK_SIZE) -> None:
        if not 1 <= chunk_size <= CHUNK_SIZE:
            raise ValueError(f"chunk_size must be in 1..{CHUNK_SIZE}")
        self.chunk_size = chunk_size
        self.next_tx_ord = 0

    def encode(self, message: bytes) -> list[bytes]:
        """Return the data-channel messages that carry ``message``, in sending order."""
        tx_ord = self.next_tx_ord
        self.next_tx_ord += 1
        return split_message(message, tx_ord, self.chunk_size)


@dataclass(slots=True)
class _Pending:
    length: int
    total_size: int
    chunks: dict[int, bytes] = field(default_factory=dict)
    received: int = 0


class Reassembler:
    """Rebuilds application messages from the chunks of one data channel.

    Feed every received data-channel message to :meth:`feed`; it returns the completed
    application message, or ``None`` while chunks are missing (or for an ignored duplicate).

    Bounds (all per connection): ``max_message_size`` on ``total_size`` (larger →
    :class:`MessageTooBig`), ``max_chunk_size`` on each chunk, ``max_pending_messages`` and
    ``max_pending_bytes`` on incomplete messages (exceeded → :class:`PolicyViolation`). Header
    errors and chunks that contradict earlier chunks of the same ``tx_ord`` raise
    :class:`MalformedMessage`. After any error the connection should be closed and the
    reassembler discarded.

    Chunks of one message may arrive in any order and interleaved with other messages. A chunk
    whose ``(tx_ord, index)`` was already received with the same bytes is ignored, as is any chunk
    of one of the last ``completed_memory`` completed messages.
    """

    def __init__(
        self,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_chunk_size: int = CHUNK_SIZE,
        max_pending_messages: int = DEFAULT_MAX_PENDING_MESSAGES,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        completed_memory: int = DEFAULT_COMPLETED_MEMORY,
    ) -> None:
        self.max_message_size = max_message_size
        self.max_chunk_size = max_chunk_size
        self.max_pending_messages = max_pending_messages
        self.max_pending_bytes = max_pending_bytes
        self._pending: dict[int, _Pending] = {}
        self._pending_bytes = 0
        self._completed: set[int] = set()
        self._completed_order: deque[int] = deque()
        self._completed_memory = completed_memory

    @property
    def pending_messages(self) -> int:
        """Number of messages with some, but not all, chunks received."""
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        """Chunk bytes held for incomplete messages."""
        return self._pending_bytes

    def _mark_completed(self, tx_ord: int) -> None:
        if self._completed_memory <= 0:
            return
        self._completed.add(tx_ord)
        self._completed_order.append(tx_ord)
        while len(self._completed_order) > self._completed_memory:
            self._completed.discard(self._completed_order.popleft())

    def feed(self, packet: bytes | bytearray | memoryview) -> bytes | None:
        """Process one data-channel message; return a completed application message or ``None``."""
        header, chunk = decode_packet(packet)
        if header.chunk_size > self.max_chunk_size:
            raise MessageTooBig(f"chunk of {header.chunk_size} bytes exceeds {self.max_chunk_size}")
        if header.total_size > self.max_message_size:
            raise MessageTooBig(
                f"message of {header.total_size} bytes exceeds {self.max_message_size}"
            )
        if header.length * self.max_chunk_size < header.total_size:
            raise MalformedMessage("chunk count cannot carry the message size")
        if header.tx_ord in self._completed:
            return None  # late duplicate of a delivered message
        if header.length == 1:
            self._mark_completed(header.tx_ord)
            return chunk

        pending = self._pending.get(header.tx_ord)
        if pending is None:
            if len(self._pending) >= self.max_pending_messages:
                raise PolicyViolation("too many incomplete chunked messages")
            pending = _Pending(header.length, header.total_size)
            is_new = True
        else:
            if pending.length != header.length or pending.total_size != header.total_size:
                raise MalformedMessage("chunk header contradicts earlier chunks of the message")
            previous = pending.chunks.get(header.index)
            if previous is not None:
                if previous != chunk:
                    raise MalformedMessage("duplicate chunk with different content")
                return None
            is_new = False
        if pending.received + header.chunk_size > pending.total_size:
            raise MalformedMessage("chunks exceed the announced message size")
        if self._pending_bytes + header.chunk_size > self.max_pending_bytes:
            raise PolicyViolation("too many bytes held for incomplete messages")

        if is_new:
            self._pending[header.tx_ord] = pending
        pending.chunks[header.index] = chunk
        pending.received += header.chunk_size
        self._pending_bytes += header.chunk_size
        if len(pending.chunks) < pending.length:
            return None

        del self._pending[header.tx_ord]
        self._pending_bytes -= pending.received
        if pending.received != pending.total_size:
            raise MalformedMessage("chunk sizes do not add up to the message size")
        self._mark_completed(header.tx_ord)
        return b"".join(pending.chunks[i] for i in range(pending.length))


__all__ = [
    "CHUNK_SIZE",
    "HEADER_SIZE",
    "MAX_PACKET_SIZE",
    "ChunkEncoder",
    "ChunkHeader",
    "Reassembler",
    "decode_packet",
    "detect_framing",
    "encode_packet",
    "split_message",
]
