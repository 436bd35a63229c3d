"""Every timeout and limit of the client in one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Transport = Literal["auto", "websocket", "webrtc"]
Framing = Literal["edrys", "plain"]

#: A smaller send queue would overflow during every handshake and reconnect forever.
MIN_SEND_QUEUE = 8
ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientOptions:
    """Client settings; all durations in seconds."""

    # WebRTC
    password: str | None = "password"
    """Signaling encryption password; Edrys-Lite always uses the literal ``"password"`` (§5.1).
    ``None`` publishes plaintext signaling (upstream y-webrtc without a password)."""
    signaling_urls: tuple[str, ...] = ()
    """Signaling servers; empty means the server URL itself (its ``/`` door)."""
    ice_servers: tuple[str, ...] = ()
    """STUN/TURN URLs (``stun:host:port``); none by default, so only host candidates are used."""
    ice_transport_policy: Literal["all", "relay"] = "all"
    framing: Framing = "edrys"
    """``"edrys"``: the fork's 40-byte chunk framing (§4.6); ``"plain"``: upstream y-webrtc."""
    max_conns: int = 20
    edrys_identity: bool = True
    """With ``framing="edrys"``: send Edrys' user id (43) and signed challenge (44) on every data
    channel, from a P-256 key made per session, and verify the peers' (§5.4, §5.5)."""

    # Timeouts
    webrtc_fallback_seconds: float = 15.0
    """Auto mode: no signaling server, or peers seen on signaling but no data channel open, this
    long → WebSocket."""
    empty_room_seconds: float = 5.0
    """WebRTC: with no word from a peer this long after signaling connected, an empty room counts
    as synced. Only where the signaling server does not count the room's subscribers (edrys-relay
    counts them unless access control is on); a count of one decides at once."""
    connect_timeout: float = 10.0
    """Opening handshake of a WebSocket, and one WebRTC connection attempt."""
    signaling_ping_interval: float = 15.0
    awareness_renew_seconds: float = 15.0
    awareness_timeout: float = 30.0
    silence_timeout: float = 30.0
    """A WebSocket that received nothing this long is closed and reopened (y-websocket)."""
    backoff_initial: float = 0.1
    backoff_max: float = 2.5

    # Limits
    max_message: int = 16 * 1024 * 1024
    max_signaling_message: int = 64 * 1024
    send_queue: int = 1024
    """Messages queued for one link; a link whose queue overflows is dropped and resyncs. At
    least ``MIN_SEND_QUEUE``: a handshake alone queues three (step 1, awareness, step 2)."""
    max_buffered_bytes: int = 16 * 1024 * 1024
    """Data-channel bytes buffered for sending; above this the link is dropped and resyncs."""

    def __post_init__(self) -> None:
        if self.send_queue < MIN_SEND_QUEUE:
            raise ValueError(f"send_queue must be at least {MIN_SEND_QUEUE}")
        for url in self.ice_servers:
            if not url.startswith(ICE_SCHEMES):
                raise ValueError(f"ICE server {url!r} is not a stun:, stuns:, turn: or turns: URL")


__all__ = ["ClientOptions", "Framing", "Transport"]
