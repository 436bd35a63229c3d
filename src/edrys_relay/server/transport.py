"""Frame once, write once per loop turn: the send side shared by every connection.

A broadcast frames its message once (server frames are unmasked, so every receiver gets the
same bytes) and queues those bytes on each receiver; the :class:`Outbox` flushes every
receiver's queue with one ``transport.write`` per event-loop turn. Under load one write carries
many messages, which is where the CPU goes (docs/performance.md). Nothing awaits the slowest
receiver.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Protocol

_BINARY = 0x82  # FIN + opcode 2
_TEXT = 0x81  # FIN + opcode 1
_PACK_16 = struct.Struct("!BBH").pack
_PACK_64 = struct.Struct("!BBQ").pack


def frame_message(data: bytes | str) -> bytes:
    """One unfragmented, unmasked (server-to-client) WebSocket frame, RFC 6455 §5.2."""
    if isinstance(data, str):
        return frame_payload(data.encode(), text=True)
    return frame_payload(data, text=False)


def frame_payload(payload: bytes, *, text: bool) -> bytes:
    """The frame of an already encoded payload (UTF-8 for a text frame)."""
    head = _TEXT if text else _BINARY
    size = len(payload)
    if size < 126:
        header = bytes((head, size))
    elif size < 65536:
        header = _PACK_16(head, 126, size)
    else:
        header = _PACK_64(head, 127, size)
    return header + payload


class Flushable(Protocol):
    def flush(self) -> None:
        """Write everything queued for this connection."""
        ...


class Outbox:
    """Frames each message once and flushes queued frames once per event-loop turn."""

    __slots__ = ("_dirty", "_handle", "_last_data", "_last_frame", "_loop")

    def __init__(self) -> None:
        self._dirty: list[Flushable] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.Handle | None = None
        self._last_data: bytes | str | None = None
        self._last_frame = b""

    def frame(self, data: bytes | str) -> bytes:
        # Hubs pass the same object to every receiver of a broadcast: frame it once.
        if data is not self._last_data:
            self._last_frame = frame_message(data)
            self._last_data = data
        return self._last_frame

    def schedule(self, peer: Flushable) -> None:
        if not self._dirty:
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            self._handle = self._loop.call_soon(self.flush)
        self._dirty.append(peer)

    def flush(self) -> None:
        """Write every queued frame; each connection gets one write call.

        Runs at the end of the loop turn, or earlier when called (after a store commit).
        """
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        dirty, self._dirty = self._dirty, []
        self._last_data, self._last_frame = None, b""
        for peer in dirty:
            peer.flush()


__all__ = ["Flushable", "Outbox", "frame_message", "frame_payload"]
