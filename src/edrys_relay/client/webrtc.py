"""y-webrtc transport on aiortc (protocols.md §4): signaling, peer connections, data channels.

* Signaling (§4.2, §4.3): one WebSocket per signaling URL; ``subscribe`` to the room, publish an
  encrypted ``announce`` (§4.5), ``ping`` every ``signaling_ping_interval``; reconnect with
  backoff. Who connects to whom, and the glare rule, live in the sans-I/O
  :class:`~edrys_relay.protocol.webrtc_peers.PeerTable` (§4.4).
* Peer connections and data channels are :class:`~edrys_relay.client.webrtc_links.PeerLinks`
  (shared with the server's WebRTC bridge): every message framed with the fork's 40-byte chunk
  header (``framing="edrys"``, the default) or sent as is (``"plain"``, upstream npm y-webrtc).
  On open: our sync step 1 and awareness, and with the Edrys framing Edrys' user id (43) and
  signed challenge (44). Updates new to us are passed on to the other connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from edrys_relay.client.document import SharedDocument
from edrys_relay.client.options import ClientOptions
from edrys_relay.client.webrtc_links import EDRYS_CUSTOM_MESSAGE, Link, PeerLinks
from edrys_relay.client.websocket import backoff_delay
from edrys_relay.protocol.edrys_identity import Identity
from edrys_relay.protocol.errors import ProtocolError
from edrys_relay.protocol.lib0 import encode_var_string
from edrys_relay.protocol.webrtc_crypto import decrypt, derive_key, encrypt
from edrys_relay.protocol.webrtc_peers import PeerTable
from edrys_relay.protocol.yjs import encode_awareness
from edrys_relay.security.redaction import redact

logger = logging.getLogger(__name__)

AppMessageListener = Callable[[str, Any], None]


class _Signaling:
    """One signaling server connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.label = redact(url)
        """The URL as logs show it: tokens hidden."""
        self.connection: ClientConnection | None = None
        self.subscribers: int | None = None
        """The room's subscribers here, as the echo of our announce counts them (None: unknown)."""

    async def send(self, message: dict[str, Any]) -> None:
        connection = self.connection
        if connection is not None:
            with contextlib.suppress(ConnectionClosed):
                await connection.send(json.dumps(message, separators=(",", ":")))


class WebRtcTransport:
    """Keeps a :class:`SharedDocument` in sync with y-webrtc peers."""

    name = "webrtc"

    def __init__(
        self,
        shared: SharedDocument,
        room: str,
        signaling_urls: list[str],
        options: ClientOptions,
        synced: asyncio.Event,
        on_app_message: AppMessageListener | None = None,
    ) -> None:
        self.shared = shared
        self.room = room
        self.options = options
        self.peer_id = str(uuid.uuid4())
        self.table = PeerTable(self.peer_id, options.max_conns)
        self.peers_seen = asyncio.Event()
        self.signaling_connected = asyncio.Event()
        self._signaling = [_Signaling(url) for url in signaling_urls]
        self._route: dict[str, _Signaling] = {}
        self._key: bytes | None = None
        self.subscribers_counted = asyncio.Event()
        """Set once every signaling server counted the room's subscribers (see :attr:`alone`)."""
        self.last_error: str | None = None
        """Why the last signaling connection failed or ended; None again once one opens."""
        self.synced = synced
        self._on_app_message = on_app_message
        self.identity = (
            Identity.generate() if options.edrys_identity and options.framing == "edrys" else None
        )
        self.peer_links = PeerLinks(
            room,
            self.table,
            options,
            self,
            self,
            framing=options.framing,
            identity=self.identity,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        shared.add_local_listener(self.broadcast)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self.options.password is not None:
            self._key = await asyncio.to_thread(derive_key, self.options.password, self.room)
        for signaling in self._signaling:
            task = asyncio.create_task(
                self._signal_forever(signaling), name=f"signaling {signaling.label}"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for signaling in self._signaling:
            await signaling.send({"type": "unsubscribe", "topics": [self.room]})
        for signaling in self._signaling:
            # a normal close (1000); cancelling the task inside ``connect`` would send 1011
            if signaling.connection is not None:
                await signaling.connection.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.peer_links.close()

    @property
    def links(self) -> dict[str, Link]:
        return self.peer_links.links

    @property
    def channel_opened(self) -> asyncio.Event:
        return self.peer_links.channel_opened

    @property
    def link_count(self) -> int:
        return self.peer_links.link_count

    def verified_users(self) -> dict[str, str]:
        """Edrys user ids of connected peers whose signed challenge verified, by peer id."""
        return self.peer_links.verified_users()

    async def flush(self) -> None:
        """Wait until no open data channel has bytes buffered (wrap in a timeout)."""
        await self.peer_links.flush()

    def broadcast(self, message: bytes, *, exclude: Link | None = None) -> None:
        """Send ``message`` on every open data channel (except ``exclude``)."""
        self.peer_links.broadcast(message, exclude=exclude)

    def send_app_message(self, value: Any) -> int:
        """Send an Edrys custom message (type 42, JSON text) to every peer; return how many."""
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        message = bytes((EDRYS_CUSTOM_MESSAGE,)) + encode_var_string(text)
        self.broadcast(message)
        return self.link_count

    # -- links (LinkHandler) ------------------------------------------------------------------

    def link_ready(self, link: Link) -> None:
        link.send(self.shared.sync_step1())
        now = asyncio.get_running_loop().time()
        link.send(encode_awareness(self.shared.awareness.renew(now)))

    def link_message(self, link: Link, message: bytes) -> None:
        outcome = self.shared.handle(message, asyncio.get_running_loop().time())
        for reply in outcome.replies:
            link.send(reply)
        if outcome.relay is not None:
            self.broadcast(outcome.relay, exclude=link)
        if outcome.synced and not link.synced:
            link.synced = True
            self.synced.set()

    def link_app_message(self, link: Link, value: Any) -> None:
        if self._on_app_message is not None:
            self._on_app_message(link.remote, value)

    def link_closed(self, link: Link) -> None:
        if not any(other.synced for other in self.links.values()):
            self.synced.clear()

    # -- signaling (SignalPath) ---------------------------------------------------------------

    async def send_signal(self, remote: str, inner: dict[str, Any]) -> None:
        signaling = self._route.get(remote)
        if signaling is not None:
            await self._publish(signaling, inner)

    async def reannounce(self) -> None:
        for signaling in self._signaling:
            await signaling.send({"type": "subscribe", "topics": [self.room]})
            await self._publish(signaling, self.table.announce())

    def _seal(self, inner: dict[str, Any]) -> Any:
        return inner if self._key is None else encrypt(self._key, inner)

    async def _publish(self, signaling: _Signaling, inner: dict[str, Any]) -> None:
        await signaling.send({"type": "publish", "topic": self.room, "data": self._seal(inner)})

    @property
    def signaling_open(self) -> bool:
        return any(signaling.connection is not None for signaling in self._signaling)

    @property
    def alone(self) -> bool | None:
        """Whether we are the room's only subscriber on every signaling server.

        None until each has counted: edrys-relay (without access control) and upstream y-webrtc
        10.3 add ``clients`` to each publish, so the echo of our own announce carries the count.
        """
        counts = [signaling.subscribers for signaling in self._signaling]
        if None in counts:
            return None
        return all(count == 1 for count in counts)

    def _count_subscribers(self, signaling: _Signaling, clients: Any) -> None:
        valid = isinstance(clients, int) and not isinstance(clients, bool)
        signaling.subscribers = clients if valid else None
        if self.alone is not None:
            self.subscribers_counted.set()

    async def _signal_forever(self, signaling: _Signaling) -> None:
        failures = 0
        while True:
            try:
                async with connect(
                    signaling.url,
                    compression=None,
                    open_timeout=self.options.connect_timeout,
                    max_size=self.options.max_signaling_message,
                ) as connection:
                    failures = 0
                    signaling.connection = connection
                    self.last_error = None
                    self.signaling_connected.set()
                    await self._signal_session(signaling, connection)
                self.last_error = f"signaling {signaling.url}: the server closed the connection"
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
                self.last_error = f"signaling {signaling.label}: {exc or type(exc).__name__}"
                logger.info("%s", self.last_error)
            finally:
                signaling.connection = None
            await asyncio.sleep(backoff_delay(failures, self.options))
            failures += 1

    async def _signal_session(self, signaling: _Signaling, connection: ClientConnection) -> None:
        await signaling.send({"type": "subscribe", "topics": [self.room]})
        await self._publish(signaling, self.table.announce())
        pinger = asyncio.create_task(self._ping(signaling))
        try:
            async for frame in connection:
                if isinstance(frame, str):
                    await self._on_signaling_frame(signaling, frame)
        finally:
            pinger.cancel()

    async def _ping(self, signaling: _Signaling) -> None:
        while True:
            await asyncio.sleep(self.options.signaling_ping_interval)
            await signaling.send({"type": "ping"})

    async def _on_signaling_frame(self, signaling: _Signaling, frame: str) -> None:
        try:
            message = json.loads(frame)
        except ValueError:
            return
        if not isinstance(message, dict) or message.get("type") != "publish":
            return
        if message.get("topic") != self.room:
            return
        try:
            inner = self._unseal(message.get("data"))
            if inner is None:
                return
            action = self.table.receive(inner)
        except ProtocolError as exc:
            logger.info("signaling %s: ignoring a message: %s", signaling.label, exc)
            return
        sender = inner.get("from") if isinstance(inner, dict) else None
        if isinstance(sender, str) and sender != self.peer_id:
            self.peers_seen.set()
        elif sender == self.peer_id and inner.get("type") == "announce":
            self._count_subscribers(signaling, message.get("clients"))
        if action is None:
            return
        self._route[action.remote] = signaling
        await self.peer_links.act(action)

    def _unseal(self, data: Any) -> Any:
        if self._key is None:
            return data
        if not isinstance(data, str):
            return None  # a keyed receiver ignores non-string data (§4.4)
        return decrypt(self._key, data, max_size=self.options.max_signaling_message)


__all__ = ["AppMessageListener", "WebRtcTransport"]
