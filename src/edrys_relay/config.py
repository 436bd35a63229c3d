"""All settings of a running server in one immutable object, with every default named here.

The CLI builds a :class:`Settings` from flags and environment variables; everything else
receives it (or the part it needs) through its constructor. ``docs/configuration.md``
mirrors the table of limits below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 1234

    # Timeouts (seconds)
    ping_interval: float = 30.0
    """WebSocket ping period; a connection whose pong has not arrived by the next ping closes."""
    open_timeout: float = 10.0
    """Deadline for the opening handshake (slowloris guard)."""
    close_timeout: float = 5.0
    awareness_timeout: float = 30.0
    """Awareness states not renewed for this long are removed (y-protocols outdatedTimeout)."""
    sweep_interval: float = 3.0
    """How often awareness expiry and idle-room unloading run (y-protocols checks every 3 s)."""
    room_idle_seconds: float = 60.0
    """An empty room stays loaded this long, so reconnecting clients find it warm."""
    slow_consumer_seconds: float = 10.0
    """A receiver whose send buffer stays above ``send_buffer_high`` this long is dropped."""

    # Limits
    max_message_yjs: int = 16 * MiB
    max_message_signaling: int = 64 * KiB
    max_room_name: int = 256
    max_topic_length: int = 1024
    send_buffer_high: int = 1 * MiB
    """Send-buffer level above which a receiver counts as behind."""
    send_buffer_max: int = 64 * MiB
    """Send-buffer level at which a receiver is dropped at once."""
    max_awareness_entries: int = 8
    """Entries in one incoming awareness update (a client sends its own state)."""
    max_awareness_state: int = 64 * KiB

    # Storage
    store: Literal["sqlite", "memory"] = "sqlite"
    """``sqlite``: durable, in ``data_dir``; ``memory``: rooms are lost when the server stops."""
    data_dir: str = "edrys-data"
    """Directory of the SQLite database (relative to the working directory unless absolute)."""
    compact_updates: int = 1000
    """Merge a room's history into one record once this many records follow the merged one."""
    compact_bytes: int = 1 * MiB
    """... or once those records hold this many bytes."""
    store_backlog_max: int = 64 * MiB
    """Bytes of updates waiting for their commit above which rooms refuse updates (close 1013)."""

    # Storage durability against power loss (docs/storage.md "The durability contract")
    sqlite_synchronous: Literal["full", "normal"] = "full"
    """SQLite's ``synchronous`` (WAL mode). ``full``: every commit is on the disk before it is
    relayed, so what clients saw survives ``kill -9`` and a power loss. ``normal``: the commit
    is written to the WAL (survives ``kill -9``) but synced only at checkpoints, so a power loss
    may take the last commits; saves an fsync (~0.3-0.5 ms) before each relay."""

    # Scale-out on Redis (docs/deployment.md)
    redis_url: str | None = field(default=None, repr=False)
    """``redis://HOST:PORT/DB`` shared by every node; None: this process alone, with ``store``."""
    compaction_lease_seconds: float = 10.0
    """A compaction task a node took and did not finish in this time goes to another node."""

    # Stream relay (docs/stream.md)
    stream_max_message: int = 5 * MiB
    """Largest ``/stream`` message, i.e. one frame; larger closes the sender with 1009."""
    stream_max_source_fps: float = 60.0
    """Frames per second a source may send on average (1 s bursts); the rest are dropped."""
    stream_max_viewers: int = 256
    """Clients per stream room besides its source; one more ``join-room`` gets an error."""
    stream_max_room_id: int = 256
    """Longest ``roomId`` accepted in ``register-source``/``join-room``."""
    stream_kernel_unsent: int = 128 * KiB
    """Unsent bytes the kernel may hold per stream client (TCP_NOTSENT_LOWAT; 0: no limit)."""
    stream_ping_interval: float = 5.0
    """JSON and WebSocket ping period; a client that missed the previous pong is dropped."""
    stream_list_rooms: bool = True
    """List the rooms that have a source in ``info`` (Node behaviour); False keeps them private."""

    # Security (docs/security.md: threat model, limits table, close codes)
    auth_secrets: tuple[str, ...] = field(default=(), repr=False)
    """Room-token secrets, newest first (it signs); none means access control is off."""
    allowed_origins: tuple[str, ...] = ()
    """Browser origins allowed on every WebSocket door; empty allows any (stock behaviour)."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks whose X-Forwarded-For names the client."""
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    max_connections: int = 4096
    """Open WebSocket connections; beyond it new ones are closed with 1013."""
    max_connections_per_address: int = 1024
    """Per client address; sized for a whole school behind one NAT address (docs/threats.md V21)."""
    message_rate: float = 200.0
    """Average frames per second per connection; a connection over the bucket closes (1008)."""
    message_burst: int = 400
    awareness_rate: float = 20.0
    """Awareness updates per second per connection; excess updates are dropped."""
    awareness_burst: int = 100
    """Edrys sends one awareness update per pupil for a class-wide message (protocols.md §5.6)."""
    max_awareness_client_ids: int = 4
    """Awareness client IDs one connection may speak for; others' IDs are never accepted."""
    max_topics_per_connection: int = 32
    max_subscribers_per_topic: int = 128
    max_rooms: int = 10_000
    """Loaded rooms; a connection that would open one more is shed with 1013 (A12)."""
    max_document_bytes: int = 32 * MiB
    """Stored update bytes per room; once reached, further updates are dropped (security.md)."""

    # WebRTC bridge (docs/design.md "WebRTC bridge", docs/security.md; off by default)
    bridge_webrtc: bool = False
    """Join every signaling topic we can decrypt as a y-webrtc peer holding the room's document."""
    bridge_passwords: tuple[str, ...] = field(default=("password",), repr=False)
    """y-webrtc room passwords to try; Edrys-Lite always uses ``password``. Rooms whose
    signaling is plaintext (no password) are joined too."""
    bridge_max_peers_per_room: int = 32
    """WebRTC peers the bridge connects to in one room; more keep to peer-to-peer only."""
    bridge_max_peers: int = 128
    """WebRTC peers the bridge connects to in all rooms together."""
    bridge_ice_servers: tuple[str, ...] = ()
    """STUN/TURN URLs for the bridge's peer connections; none: host candidates only."""

    # Operations (docs/operations.md)
    metrics_token: str | None = field(default=None, repr=False)
    """Bearer token ``/metrics`` requires; None serves metrics to anyone who can connect."""
    loop_lag_interval: float = 0.5
    """How often the event-loop lag is sampled for ``/metrics``."""

    def public_url(self, scheme: str = "ws") -> str:
        """A URL for people to type: the bound host, or localhost for a wildcard bind."""
        host = "localhost" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}"


__all__ = ["KiB", "MiB", "Settings"]
