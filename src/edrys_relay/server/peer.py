"""The one interface hubs use to talk to a connection, so they never import the WebSocket stack."""

from __future__ import annotations

from typing import Protocol


class Peer(Protocol):
    """A connected client as the hubs see it."""

    @property
    def id(self) -> str:
        """Short connection id used in every log line about this connection."""
        ...

    def send(self, data: bytes | str) -> None:
        """Queue one message (bytes: binary frame, str: text frame) without waiting.

        Never blocks and never raises for a closed or slow connection: a receiver that cannot
        keep up is disconnected by the implementation (it resyncs when it reconnects).
        """
        ...

    def close(self, code: int, reason: str) -> None:
        """Start closing the connection with a close code; returns at once."""
        ...
