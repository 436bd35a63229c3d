"""The y-webrtc peer protocol carried in signaling ``publish`` messages (protocols.md §4.4).

A pure state machine: feed it the decrypted inner objects of the room's ``publish`` messages
(:meth:`PeerTable.receive`) and it says what the I/O layer must do; ask it for the objects to
publish (:meth:`PeerTable.announce`, :meth:`PeerTable.signal`). It implements the receiver rules
of the fork and of upstream y-webrtc:

* ignore messages ``from`` ourselves, or addressed ``to`` someone else;
* ``announce`` from a peer we have no connection with, while below ``max_conns``: connect to it
  as the initiator (whoever receives an announce makes the offer);
* ``signal`` offer while a connection to the sender exists (glare): drop it when our token is set
  and greater than the remote one, otherwise clear our token and accept it;
* ``signal`` answer: clear our token;
* a signal addressed to us is delivered to the connection, created as non-initiator if needed.

Tokens are milliseconds since the epoch plus a random fraction, made when a connection first
signals and kept until cleared (the caller passes the clock in).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edrys_relay.protocol.errors import InvalidPayload


@dataclass(frozen=True, slots=True)
class Connect:
    """Open a connection to ``remote`` as the initiator (send an offer)."""

    remote: str


@dataclass(frozen=True, slots=True)
class Deliver:
    """Feed ``signal`` to the connection with ``remote``.

    ``replace`` means an existing connection must be discarded first and a fresh non-initiator
    one made (we accepted the remote offer after a glare, or the remote started over).
    """

    remote: str
    signal: dict[str, Any]
    create: bool
    replace: bool


Action = Connect | Deliver


@dataclass(slots=True)
class _Conn:
    initiator: bool
    token: float | None = None
    answered: bool = False


@dataclass(slots=True)
class PeerTable:
    """Our side of one y-webrtc room: our ``peer_id`` and the connections we keep."""

    peer_id: str
    max_conns: int = 20
    _conns: dict[str, _Conn] = field(default_factory=dict)

    def __contains__(self, remote: str) -> bool:
        return remote in self._conns

    def __len__(self) -> int:
        return len(self._conns)

    def announce(self) -> dict[str, Any]:
        """The inner object announcing us to the room."""
        return {"type": "announce", "from": self.peer_id}

    def signal(self, remote: str, signal: dict[str, Any], now_token: float) -> dict[str, Any]:
        """The inner object carrying ``signal`` to ``remote``; sets our token on first use."""
        conn = self._conns.get(remote)
        if conn is None:
            raise KeyError(remote)
        if conn.token is None:
            conn.token = now_token
        return {
            "to": remote,
            "from": self.peer_id,
            "type": "signal",
            "token": conn.token,
            "signal": signal,
        }

    def closed(self, remote: str) -> None:
        """Forget the connection with ``remote`` (it closed or failed)."""
        self._conns.pop(remote, None)

    def receive(self, message: object) -> Action | None:
        """Apply the receiver rules to one decrypted inner object.

        Raises:
            InvalidPayload: a signal without a dict ``signal`` or with a non-numeric token.
        """
        if not isinstance(message, dict):
            return None
        sender = message.get("from")
        to = message.get("to")
        if not isinstance(sender, str) or sender == self.peer_id:
            return None
        if isinstance(to, str) and to != self.peer_id:
            return None
        kind = message.get("type")
        if kind == "announce":
            return self._on_announce(sender)
        if kind == "signal":
            return self._on_signal(sender, to == self.peer_id, message)
        return None

    def _on_announce(self, sender: str) -> Action | None:
        if sender in self._conns or len(self._conns) >= self.max_conns:
            return None
        self._conns[sender] = _Conn(initiator=True)
        return Connect(sender)

    def _on_signal(self, sender: str, to_us: bool, message: dict[str, Any]) -> Action | None:
        signal = message.get("signal")
        if not isinstance(signal, dict):
            raise InvalidPayload("signal without a signal object")
        conn = self._conns.get(sender)
        replace = False
        if signal.get("type") == "offer" and conn is not None:
            remote_token = message.get("token")
            if not isinstance(remote_token, (int, float)) or isinstance(remote_token, bool):
                raise InvalidPayload("offer without a numeric token")
            if conn.token is not None and conn.token > remote_token:
                return None  # glare: our offer wins, theirs is dropped
            conn.token = None
            # an aiortc connection cannot take an offer after making its own, nor a second offer
            replace = conn.initiator or conn.answered
        if signal.get("type") == "answer" and conn is not None:
            conn.token = None
        if not to_us:
            return None
        create = conn is None or replace
        if create:
            conn = _Conn(initiator=False)
            self._conns[sender] = conn
        if signal.get("type") == "offer" and conn is not None:
            conn.answered = True
        return Deliver(sender, signal, create=create, replace=replace)


__all__ = ["Action", "Connect", "Deliver", "PeerTable"]
