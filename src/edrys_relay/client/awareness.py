"""Client-side awareness: our own state plus the peers' states (y-protocols ``awareness.js``).

The wire format and the clock rules are the server's (:mod:`edrys_relay.protocol.awareness`);
this adds what a client does on top (protocols.md §2.4): it owns one client ID whose clock it
bumps on every change, renews its state every ``renew_seconds``, and heals a removal of its own
state that someone else sent by re-broadcasting with a higher clock. No I/O and no clock of its
own: callers pass ``now`` in and send what the methods return.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from edrys_relay.protocol.awareness import (
    NULL_STATE,
    AwarenessChange,
    AwarenessEntry,
    AwarenessStates,
    decode_awareness_update,
    encode_awareness_update,
)

AwarenessListener = Callable[[AwarenessChange], None]


class Awareness:
    """Our awareness state and every peer's, with change listeners."""

    def __init__(self, client_id: int) -> None:
        self.client_id = client_id
        self._clock = 0
        self._state: str = NULL_STATE
        self._changed_at = 0.0
        self._peers = AwarenessStates()
        self._listeners: list[AwarenessListener] = []

    def add_listener(self, listener: AwarenessListener) -> None:
        """Call ``listener`` with every change of the peers' states."""
        self._listeners.append(listener)

    @property
    def local_state(self) -> Any:
        """Our own state as a JSON value (``None`` when removed)."""
        return json.loads(self._state)

    def peers(self) -> dict[int, Any]:
        """Peers' states by client ID, parsed from JSON."""
        peers = self._peers
        return {cid: json.loads(peers.get(cid) or NULL_STATE) for cid in peers.client_ids()}

    def set_local_state(self, state: Any, now: float) -> bytes:
        """Replace our state (JSON-serialisable, or ``None`` to remove it); return the update."""
        self._state = json.dumps(state, separators=(",", ":"), ensure_ascii=False)
        self._clock += 1
        self._changed_at = now
        return self.encode_local()

    def encode_local(self) -> bytes:
        """An update carrying only our own entry."""
        return encode_awareness_update([AwarenessEntry(self.client_id, self._clock, self._state)])

    def renew(self, now: float) -> bytes:
        """Bump our clock and return every state we know, for a new link.

        Receivers that dropped our state when their own link closed keep its clock, and would
        reject a re-send with the same clock until the next renewal (y-protocols rules).
        """
        if self._state != NULL_STATE:
            self._clock += 1
            self._changed_at = now
        return self.encode_all()

    def encode_all(self) -> bytes:
        """An update with our entry (if any) and every peer state we hold."""
        entries = self._peers.snapshot()
        if self._state != NULL_STATE:
            entries.insert(0, AwarenessEntry(self.client_id, self._clock, self._state))
        return encode_awareness_update(entries)

    def apply(self, update: bytes, now: float) -> tuple[bool, bytes | None]:
        """Apply a received update.

        Returns:
            Whether a peer state changed (renewals count), and an update to broadcast when
            someone nulled our own state.
        """
        entries = decode_awareness_update(update)
        heal = any(
            e.client_id == self.client_id and e.is_removal and self._state != NULL_STATE
            for e in entries
        )
        change = self._peers.apply([e for e in entries if e.client_id != self.client_id], now)
        if change:
            self._notify(change)
        if heal:
            self._clock += 1
            return bool(change), self.encode_local()
        return bool(change), None

    def tick(self, now: float, renew_seconds: float, timeout: float) -> bytes | None:
        """Expire silent peers; return our renewal when it is due."""
        removed = self._peers.expire(now, timeout)
        if removed:
            self._notify(AwarenessChange(removed=[e.client_id for e in removed], entries=removed))
        if self._state != NULL_STATE and now - self._changed_at >= renew_seconds:
            self._clock += 1
            self._changed_at = now
            return self.encode_local()
        return None

    def forget_peers(self) -> None:
        """Drop every peer state (our link is gone, as the JS client does on close).

        Their clocks are forgotten too, so that the states the next link brings are accepted
        even when a peer re-sends its old clock (the JS client would wait for its renewal).
        """
        removed = self._peers.remove(self._peers.client_ids())
        self._peers = AwarenessStates()
        if removed:
            self._notify(AwarenessChange(removed=[e.client_id for e in removed], entries=removed))

    def _notify(self, change: AwarenessChange) -> None:
        for listener in self._listeners:
            listener(change)


__all__ = ["Awareness", "AwarenessListener"]
