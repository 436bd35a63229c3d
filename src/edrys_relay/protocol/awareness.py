"""y-protocols awareness: the wire format and the clock rules, without I/O or clocks of its own.

Wire format (protocols.md §1): varUint count, then per entry varUint clientID, varUint clock and
varString ``JSON.stringify(state)``, where the text ``null`` means "removed".

Rules (protocols.md §2.4, y-protocols ``awareness.js``): an entry is accepted when its clock is
greater than the known one, or equal with a ``null`` state while a state is held (a removal).
A removal keeps the clock of the last accepted state. States not renewed within the timeout
expire. Callers pass the current time in, so the rules are testable without sleeping.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from edrys_relay.protocol.errors import InvalidPayload, MessageTooBig
from edrys_relay.protocol.lib0 import Decoder, encode_var_uint

NULL_STATE = "null"


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    """One (clientID, clock, state) triple; ``state`` is the JSON text as sent."""

    client_id: int
    clock: int
    state: str

    @property
    def is_removal(self) -> bool:
        return self.state == NULL_STATE


def decode_awareness_update(
    update: bytes, *, max_entries: int = 1 << 16, max_state_bytes: int = 1 << 20
) -> list[AwarenessEntry]:
    """Decode and validate an awareness update.

    Each state must be valid JSON (clients call ``JSON.parse`` on it; one bad state would make
    every receiver drop the whole message), and ``null`` is normalised to the exact text
    ``null`` so removals are recognised however they were spelled.

    Raises:
        MalformedMessage: truncated or overlong fields.
        MessageTooBig: more entries, or a larger state, than allowed.
        InvalidPayload: a state that is not JSON.
    """
    decoder = Decoder(update)
    count = decoder.read_var_uint()
    if count > max_entries:
        raise MessageTooBig(f"awareness update with {count} entries")
    entries = []
    for _ in range(count):
        client_id = decoder.read_var_uint()
        clock = decoder.read_var_uint()
        state = decoder.read_var_string()
        if len(state) > max_state_bytes:
            raise MessageTooBig("awareness state too large")
        if state != NULL_STATE:
            state = _validated_json(state)
        entries.append(AwarenessEntry(client_id, clock, state))
    return entries


def _validated_json(text: str) -> str:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidPayload("awareness state is not valid JSON") from exc
    return NULL_STATE if value is None else text


def encode_awareness_update(entries: list[AwarenessEntry]) -> bytes:
    """Encode entries in the y-protocols awareness update format."""
    parts = [encode_var_uint(len(entries))]
    for entry in entries:
        state = entry.state.encode("utf-8")
        parts.append(encode_var_uint(entry.client_id))
        parts.append(encode_var_uint(entry.clock))
        parts.append(encode_var_uint(len(state)))
        parts.append(state)
    return b"".join(parts)


@dataclass(slots=True)
class _Meta:
    clock: int
    last_updated: float


@dataclass(frozen=True, slots=True)
class AwarenessChange:
    """What one :meth:`AwarenessStates.apply` call changed."""

    added: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    entries: list[AwarenessEntry] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.entries)


class AwarenessStates:
    """The awareness states a server (or peer) knows, with y-protocols clock semantics."""

    def __init__(self) -> None:
        self._states: dict[int, str] = {}
        self._meta: dict[int, _Meta] = {}

    def __len__(self) -> int:
        return len(self._states)

    def get(self, client_id: int) -> str | None:
        return self._states.get(client_id)

    def client_ids(self) -> list[int]:
        return list(self._states)

    def apply(self, entries: list[AwarenessEntry], now: float) -> AwarenessChange:
        """Apply decoded entries; return the accepted ones (renewals included)."""
        change = AwarenessChange()
        states, metas = self._states, self._meta
        for entry in entries:
            cid = entry.client_id
            meta = metas.get(cid)
            known_clock = 0 if meta is None else meta.clock
            held = cid in states
            removal = entry.is_removal
            if not (known_clock < entry.clock or (known_clock == entry.clock and removal and held)):
                continue
            if meta is None:
                metas[cid] = _Meta(entry.clock, now)
            else:
                meta.clock = entry.clock
                meta.last_updated = now
            if removal:
                if held:
                    del states[cid]
                    change.removed.append(cid)
            else:
                states[cid] = entry.state
                (change.updated if held else change.added).append(cid)
            change.entries.append(entry)
        return change

    def remove(self, client_ids: list[int] | set[int]) -> list[AwarenessEntry]:
        """Drop held states; return the removal entries (same clock, ``null``) to broadcast."""
        removals = []
        for cid in client_ids:
            if self._states.pop(cid, None) is not None:
                removals.append(AwarenessEntry(cid, self._meta[cid].clock, NULL_STATE))
        return removals

    def expire(self, now: float, timeout: float) -> list[AwarenessEntry]:
        """Remove states not renewed for ``timeout`` seconds; forget long-removed clocks."""
        stale = [cid for cid in self._states if now - self._meta[cid].last_updated >= timeout]
        removals = self.remove(stale)
        forgotten = [
            cid
            for cid, meta in self._meta.items()
            if cid not in self._states and now - meta.last_updated >= 2 * timeout
        ]
        for cid in forgotten:
            del self._meta[cid]
        return removals

    def snapshot(self) -> list[AwarenessEntry]:
        """All held states with their current clocks (sent to a connection on open)."""
        return [
            AwarenessEntry(cid, self._meta[cid].clock, state) for cid, state in self._states.items()
        ]


__all__ = [
    "NULL_STATE",
    "AwarenessChange",
    "AwarenessEntry",
    "AwarenessStates",
    "decode_awareness_update",
    "encode_awareness_update",
]
