"""Abuse limits that need server state: connection admission, awareness ownership, counters.

The numbers live in the ``# Security`` block of :class:`~edrys_relay.config.Settings`;
``docs/security.md`` has them as a table.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from edrys_relay.protocol.awareness import AwarenessEntry
from edrys_relay.protocol.routing import RoomName


@dataclass(slots=True)
class SecurityStats:
    """What the server refused, reported under ``security`` in ``/healthz``."""

    refused_request: int = 0
    """Upgrades answered 400: an unusable room name or too many query parameters."""
    refused_origin: int = 0
    refused_token: int = 0
    shed: int = 0
    rate_limited: int = 0
    read_only_dropped: int = 0
    awareness_dropped: int = 0
    document_limit: int = 0
    tokens_expired: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class ConnectionCounter:
    """Open connections, in total and per client address (docs/threats.md V14, V15, V21)."""

    max_total: int
    max_per_address: int
    per_address: Counter[str] = field(default_factory=Counter)
    total: int = 0

    def admit(self, address: str) -> bool:
        """Count a new connection if it fits under both caps."""
        if self.total >= self.max_total or self.per_address[address] >= self.max_per_address:
            return False
        self.total += 1
        self.per_address[address] += 1
        return True

    def release(self, address: str) -> None:
        self.total -= 1
        self.per_address[address] -= 1
        if self.per_address[address] <= 0:
            del self.per_address[address]


@dataclass
class AwarenessOwners:
    """Which connection speaks for which awareness client ID, per room (docs/threats.md V9, B10).

    A connection owns the client IDs it announced first, up to ``max_ids``. Entries for an ID
    owned by another connection of the room (impersonation, or a false removal) and entries over
    the cap are dropped; a connection's IDs are released when it closes.
    """

    max_ids: int
    owners: dict[RoomName, dict[int, str]] = field(default_factory=dict)

    def admit(
        self, room: RoomName, peer_id: str, entries: list[AwarenessEntry]
    ) -> list[AwarenessEntry]:
        """Return the entries ``peer_id`` may send, claiming new IDs on the way."""
        owned = self.owners.setdefault(room, {})
        mine = sum(1 for owner in owned.values() if owner == peer_id)
        accepted = []
        for entry in entries:
            owner = owned.get(entry.client_id)
            if owner is None and mine < self.max_ids and not entry.is_removal:
                owned[entry.client_id] = owner = peer_id
                mine += 1
            if owner == peer_id:
                accepted.append(entry)
        return accepted

    def release(self, room: RoomName, peer_id: str) -> None:
        owned = self.owners.get(room)
        if owned is None:
            return
        for client_id in [cid for cid, owner in owned.items() if owner == peer_id]:
            del owned[client_id]
        if not owned:
            del self.owners[room]


__all__ = ["AwarenessOwners", "ConnectionCounter", "SecurityStats"]
