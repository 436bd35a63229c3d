"""Per-connection checks between a socket and its hub (docs/threats.md V6, V9, A3, B10, A12).

Every frame first passes a token bucket (over it: close 1008). On the Yjs door a read-only
connection's document updates are dropped and counted; so are all updates to a room whose stored
updates have reached the document size limit (its sender gets one y-protocols "permission
denied" message, which stock clients log; the room stays readable, and the last accepted update
may overshoot the limit by at most one message). Awareness updates are rate-limited (excess
dropped) and filtered to the client IDs the connection owns.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from edrys_relay.config import Settings
from edrys_relay.protocol import yjs
from edrys_relay.protocol.awareness import decode_awareness_update, encode_awareness_update
from edrys_relay.protocol.errors import PolicyViolation
from edrys_relay.protocol.lib0 import Decoder
from edrys_relay.security.ratelimit import TokenBucket
from edrys_relay.server.limits import AwarenessOwners, SecurityStats
from edrys_relay.server.rooms import Room

Clock = Callable[[], float]


class RateLimited(PolicyViolation):
    close_reason = "message rate limit"


class FrameRate:
    """The per-connection frame budget shared by every door."""

    def __init__(self, settings: Settings, stats: SecurityStats, clock: Clock) -> None:
        self._bucket = TokenBucket(settings.message_rate, settings.message_burst, clock())
        self._stats = stats
        self._clock = clock

    def check(self) -> None:
        """Raises: RateLimited: the connection sends faster than allowed."""
        if not self._bucket.take(self._clock()):
            self._stats.rate_limited += 1
            raise RateLimited("message rate over the limit")


class YjsGuard:
    """Filters the frames of one Yjs connection before its room sees them."""

    def __init__(
        self,
        *,
        room: Room,
        peer_id: str,
        read_only: bool,
        settings: Settings,
        owners: AwarenessOwners,
        stats: SecurityStats,
        notify: Callable[[bytes], None],
        clock: Clock = time.monotonic,
    ) -> None:
        self._room = room
        self._peer_id = peer_id
        self._read_only = read_only
        self._settings = settings
        self._owners = owners
        self._stats = stats
        self._clock = clock
        self._notify = notify
        self._told_full = False
        self._rate = FrameRate(settings, stats, clock)
        self._awareness = TokenBucket(settings.awareness_rate, settings.awareness_burst, clock())

    def check(self, frame: bytes) -> bytes | None:
        """Return the frame to hand to the room (maybe narrowed), or None to drop it.

        Raises:
            ProtocolError: malformed or over the frame rate.
        """
        self._rate.check()
        # Peek at the envelope only: the room decodes the frame itself, and a document update
        # can be megabytes that need not be copied here. Malformed frames fail in the room.
        decoder = Decoder(frame)
        kind = decoder.read_var_uint()
        if kind == yjs.MessageType.SYNC:
            if decoder.read_var_uint() in (yjs.SyncType.STEP2, yjs.SyncType.UPDATE):
                return self._document_write(frame)
        elif kind == yjs.MessageType.AWARENESS:
            return self._awareness_update(frame, decoder.read_var_uint8array())
        return frame

    def _document_write(self, frame: bytes) -> bytes | None:
        if self._read_only:
            # y-protocols "Handling read-only users": the server ignores their updates.
            self._stats.read_only_dropped += 1
            return None
        if self._room.log_bytes >= self._settings.max_document_bytes:
            self._stats.document_limit += 1
            if not self._told_full:
                self._told_full = True
                self._notify(yjs.encode_auth_denied("document size limit reached"))
            return None
        return frame

    def _awareness_update(self, frame: bytes, update: bytes) -> bytes | None:
        if not self._awareness.take(self._clock()):
            self._stats.awareness_dropped += 1
            return None
        s = self._settings
        entries = decode_awareness_update(
            update, max_entries=s.max_awareness_entries, max_state_bytes=s.max_awareness_state
        )
        accepted = self._owners.admit(self._room.name, self._peer_id, entries)
        if len(accepted) == len(entries):
            return frame
        self._stats.awareness_dropped += len(entries) - len(accepted)
        if not accepted:
            return None
        return yjs.encode_awareness(encode_awareness_update(accepted))


__all__ = ["FrameRate", "RateLimited", "YjsGuard"]
