"""y-webrtc transport on aiortc (protocols.md §4): signaling, peer connections, data channels.

* Signaling (§4.2, §4.3): one WebSocket per signaling URL; ``subscribe`` to the room, publish an
  encrypted ``announce`` (§4.5), ``ping`` every ``signaling_ping_interval``; reconnect with
  backoff. Who connects to whom, and the glare rule, live in the sans-I/O
  :class:`~edrys_relay.protocol.webrtc_peers.PeerTable` (§4.4).
* Peer connections (§4.7): the initiator makes the one data channel and an offer that carries all
  its candidates (aiortc gathers before ``setLocalDescription`` returns); browsers' trickled
  candidates are parsed and added, buffered until the remote description is set.
* Data channels (§4.6): every message framed with the fork's 40-byte chunk header
  (``framing="edrys"``, the default) or sent as is (``"plain"``, upstream npm y-webrtc). On open:
  our sync step 1 and awareness, and with the Edrys framing Edrys' user id (43) and signed
  challenge (44). Updates new to us are passed on to the other connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidAccessError, InvalidStateError, OperationError
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.sdp import candidate_from_sdp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from edrys_relay.client.document import SharedDocument
from edrys_relay.client.options import ClientOptions
from edrys_relay.client.websocket import backoff_delay
from edrys_relay.protocol.chunking import ChunkEncoder, Reassembler
from edrys_relay.protocol.edrys_identity import (
    HANDSHAKE,
    USER_ID,
    Identity,
    decode_handshake,
    decode_user_id,
    verify_challenge,
)
from edrys_relay.protocol.errors import ProtocolError
from edrys_relay.protocol.lib0 import Decoder, encode_var_string
from edrys_relay.protocol.webrtc_crypto import decrypt, derive_key, encrypt
from edrys_relay.protocol.webrtc_peers import Connect, Deliver, PeerTable
from edrys_relay.protocol.yjs import encode_awareness
from edrys_relay.security.redaction import redact

logger = logging.getLogger(__name__)

EDRYS_CUSTOM_MESSAGE = 42
MAX_BUFFERED_CANDIDATES = 64

AppMessageListener = Callable[[str, Any], None]
# what a bad or ill-timed offer, answer or candidate makes aiortc (or our parsing of it) raise;
# aiortc checks remote SDP with assert and indexing, so those count as bad input here too
_RTC_ERRORS = (
    AssertionError,
    IndexError,
    ValueError,
    KeyError,
    TypeError,
    InvalidAccessError,
    InvalidStateError,
    OperationError,
)


class _Link:
    """One peer connection and its data channel."""

    def __init__(self, remote: str, pc: RTCPeerConnection, options: ClientOptions) -> None:
        self.remote = remote
        self.pc = pc
        self.options = options
        self.channel: RTCDataChannel | None = None
        self.lock = asyncio.Lock()
        self.candidates: list[Any] = []
        self.remote_described = False
        self.open = False
        self.synced = False
        self.closed = False
        self.claimed_user: str | None = None
        self.user_id: str | None = None
        framed = options.framing == "edrys"
        self.encoder = ChunkEncoder() if framed else None
        self.reassembler = Reassembler(max_message_size=options.max_message) if framed else None

    def send(self, message: bytes) -> bool:
        """Send one application message; False if the link must be dropped (backlog)."""
        channel = self.channel
        if channel is None or channel.readyState != "open":
            return True  # as the fork does: dropped; the next handshake resyncs
        if channel.bufferedAmount > self.options.max_buffered_bytes:
            return False
        packets = [message] if self.encoder is None else self.encoder.encode(message)
        for packet in packets:
            channel.send(packet)
        return True

    def unframe(self, packet: bytes) -> bytes | None:
        return packet if self.reassembler is None else self.reassembler.feed(packet)


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
        self.links: dict[str, _Link] = {}
        self.peers_seen = asyncio.Event()
        self.signaling_connected = asyncio.Event()
        self.channel_opened = asyncio.Event()
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
        self._tasks: set[asyncio.Task[None]] = set()
        self._dropping: set[asyncio.Task[None]] = set()
        shared.add_local_listener(self.broadcast)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self.options.password is not None:
            self._key = await asyncio.to_thread(derive_key, self.options.password, self.room)
        for signaling in self._signaling:
            self._spawn(self._signal_forever(signaling), f"signaling {signaling.label}")

    async def close(self) -> None:
        for signaling in self._signaling:
            await signaling.send({"type": "unsubscribe", "topics": [self.room]})
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # drops run to the end: aiortc's close() never finishes if cancelled once
        await asyncio.gather(*self._dropping, return_exceptions=True)
        for link in list(self.links.values()):
            await self._drop(link, reannounce=False)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _spawn_drop(
        self, link: _Link, *, reannounce: bool = True, forget: bool = True
    ) -> asyncio.Task[None]:
        """Drop ``link`` in a task that close() awaits and never cancels.

        aiortc's ``RTCPeerConnection.close()`` never completes (nor does a second call) once it was
        cancelled half-way, so no drop may run inside a task that close() cancels.
        """
        drop = self._drop(link, reannounce=reannounce, forget=forget)
        task = asyncio.create_task(drop, name=f"drop {link.remote}")
        self._dropping.add(task)
        task.add_done_callback(self._dropping.discard)
        return task

    @property
    def link_count(self) -> int:
        return sum(1 for link in self.links.values() if link.open)

    def verified_users(self) -> dict[str, str]:
        """Edrys user ids of connected peers whose signed challenge verified, by peer id."""
        return {r: link.user_id for r, link in self.links.items() if link.user_id is not None}

    async def flush(self) -> None:
        """Wait until no open data channel has bytes buffered (wrap in a timeout)."""
        for link in list(self.links.values()):
            channel = link.channel
            if channel is None or not link.open or channel.bufferedAmount == 0:
                continue
            drained = asyncio.Event()
            channel.once("bufferedamountlow", drained.set)
            await drained.wait()

    def broadcast(self, message: bytes, *, exclude: _Link | None = None) -> None:
        """Send ``message`` on every open data channel (except ``exclude``)."""
        for link in list(self.links.values()):
            if link is not exclude and link.open and not link.send(message):
                logger.warning("%s: data channel backlog too large, dropping", link.remote)
                self._spawn_drop(link)

    def send_app_message(self, value: Any) -> int:
        """Send an Edrys custom message (type 42, JSON text) to every peer; return how many."""
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        message = bytes((EDRYS_CUSTOM_MESSAGE,)) + encode_var_string(text)
        self.broadcast(message)
        return self.link_count

    # -- signaling ----------------------------------------------------------------------------

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
        try:
            if isinstance(action, Connect):
                await self._connect(action.remote)
            else:
                await self._deliver(action)
        except _RTC_ERRORS as exc:
            logger.info("%s: WebRTC negotiation failed: %s", action.remote, exc)
            link = self.links.get(action.remote)
            if link is not None:
                self._spawn_drop(link)

    def _unseal(self, data: Any) -> Any:
        if self._key is None:
            return data
        if not isinstance(data, str):
            return None  # a keyed receiver ignores non-string data (§4.4)
        return decrypt(self._key, data, max_size=self.options.max_signaling_message)

    async def _send_signal(self, link: _Link, signal: dict[str, Any]) -> None:
        signaling = self._route.get(link.remote)
        if signaling is None:
            return
        token = time.time() * 1000 + random.random()
        await self._publish(signaling, self.table.signal(link.remote, signal, token))

    async def _reannounce(self) -> None:
        for signaling in self._signaling:
            await signaling.send({"type": "subscribe", "topics": [self.room]})
            await self._publish(signaling, self.table.announce())

    # -- peer connections ---------------------------------------------------------------------

    def _new_link(self, remote: str) -> _Link:
        policy = RTCIceTransportPolicy(self.options.ice_transport_policy)
        servers = [RTCIceServer(urls=url) for url in self.options.ice_servers]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers, iceTransportPolicy=policy))
        link = _Link(remote, pc, self.options)
        self.links[remote] = link

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            self._attach(link, channel)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self._spawn_drop(link)

        self._spawn(self._expire_unopened(link), f"open timeout {remote}")
        return link

    async def _expire_unopened(self, link: _Link) -> None:
        await asyncio.sleep(self.options.connect_timeout)
        if not link.open and not link.closed:
            logger.info("%s: no data channel within %ss", link.remote, self.options.connect_timeout)
            self._spawn_drop(link)

    async def _connect(self, remote: str) -> None:
        link = self._new_link(remote)
        async with link.lock:
            self._attach(link, link.pc.createDataChannel(os.urandom(20).hex()))
            await link.pc.setLocalDescription(await link.pc.createOffer())
            await self._send_signal(link, {"type": "offer", "sdp": link.pc.localDescription.sdp})

    async def _deliver(self, action: Deliver) -> None:
        old = self.links.get(action.remote)
        if action.replace and old is not None:
            await asyncio.shield(self._spawn_drop(old, reannounce=False, forget=False))
        link = self._new_link(action.remote) if action.create else self.links.get(action.remote)
        if link is None:
            return
        async with link.lock:
            await self._apply_signal(link, action.signal)

    async def _apply_signal(self, link: _Link, signal: dict[str, Any]) -> None:
        kind = signal.get("type")
        pc = link.pc
        if kind == "offer":
            await pc.setRemoteDescription(RTCSessionDescription(str(signal["sdp"]), "offer"))
            await self._remote_described(link)
            await pc.setLocalDescription(await pc.createAnswer())
            await self._send_signal(link, {"type": "answer", "sdp": pc.localDescription.sdp})
        elif kind == "answer" and pc.signalingState == "have-local-offer":
            await pc.setRemoteDescription(RTCSessionDescription(str(signal["sdp"]), "answer"))
            await self._remote_described(link)
        elif kind == "candidate":
            candidate = _parse_candidate(signal.get("candidate"))
            if candidate is None:
                return
            if link.remote_described:
                await pc.addIceCandidate(candidate)
            elif len(link.candidates) < MAX_BUFFERED_CANDIDATES:
                link.candidates.append(candidate)

    async def _remote_described(self, link: _Link) -> None:
        link.remote_described = True
        candidates, link.candidates = link.candidates, []
        for candidate in candidates:
            await link.pc.addIceCandidate(candidate)

    async def _drop(self, link: _Link, *, reannounce: bool = True, forget: bool = True) -> None:
        if link.closed:
            return
        link.closed, link.open = True, False
        if self.links.get(link.remote) is link:
            del self.links[link.remote]
            if forget:
                self.table.closed(link.remote)
        if not any(other.synced for other in self.links.values()):
            self.synced.clear()
        await link.pc.close()
        if reannounce:
            await self._reannounce()

    # -- data channels ------------------------------------------------------------------------

    def _attach(self, link: _Link, channel: RTCDataChannel) -> None:
        link.channel = channel

        @channel.on("open")
        def on_open() -> None:
            self._opened(link)

        @channel.on("message")
        def on_message(packet: bytes | str) -> None:
            if isinstance(packet, bytes):
                self._on_packet(link, packet)

        @channel.on("close")
        def on_close() -> None:
            self._spawn_drop(link)

        if channel.readyState == "open":
            self._opened(link)

    def _opened(self, link: _Link) -> None:
        if link.open or link.closed:
            return
        link.open = True
        self.channel_opened.set()
        link.send(self.shared.sync_step1())
        now = asyncio.get_running_loop().time()
        link.send(encode_awareness(self.shared.awareness.renew(now)))
        if self.identity is not None:
            for message in self.identity.messages(self.room, _unix_ms()):
                link.send(message)

    def _on_packet(self, link: _Link, packet: bytes) -> None:
        loop = asyncio.get_running_loop()
        try:
            message = link.unframe(packet)
            if not message:
                return  # incomplete; or upstream y-webrtc's empty answer to a type it lacks
            kind = Decoder(message).read_var_uint()
            if kind in (EDRYS_CUSTOM_MESSAGE, USER_ID, HANDSHAKE):
                self._on_edrys(link, kind, message)
                return
            outcome = self.shared.handle(message, loop.time())
        except ProtocolError as exc:
            logger.warning("%s: protocol error, closing: %s", link.remote, exc)
            self._spawn_drop(link)
            return
        for reply in outcome.replies:
            link.send(reply)
        if outcome.relay is not None:
            self.broadcast(outcome.relay, exclude=link)
        if outcome.synced and not link.synced:
            link.synced = True
            self.synced.set()

    def _on_edrys(self, link: _Link, kind: int, message: bytes) -> None:
        """Edrys' own messages (§5.5): 42 custom message, 43 user id, 44 signed challenge."""
        if kind == USER_ID:
            link.claimed_user = decode_user_id(message)
        elif kind == HANDSHAKE:
            public_key, signature = decode_handshake(message)
            if link.claimed_user is not None and verify_challenge(
                public_key, signature, self.room, _unix_ms()
            ):
                link.user_id = link.claimed_user
            else:
                logger.info("%s: Edrys handshake did not verify", link.remote)
        else:
            self._on_custom(link, message)

    def _on_custom(self, link: _Link, message: bytes) -> None:
        decoder = Decoder(message)
        decoder.read_var_uint()
        text = decoder.read_var_string()
        if self._on_app_message is None:
            return
        try:
            value = json.loads(text)
        except ValueError:
            return
        self._on_app_message(link.remote, value)


def _unix_ms() -> int:
    return time.time_ns() // 1_000_000


def _parse_candidate(value: Any) -> Any:
    """An aiortc candidate from a browser's trickled ``{candidate, sdpMid, sdpMLineIndex}``.

    Returns None for end-of-candidates and non-objects.

    Raises:
        ValueError: the candidate text does not parse.
    """
    if not isinstance(value, dict):
        return None
    text = value.get("candidate")
    if not isinstance(text, str) or not text:
        return None  # end-of-candidates
    try:
        candidate = candidate_from_sdp(text.removeprefix("candidate:"))
    except (AssertionError, IndexError, ValueError) as exc:
        # aiortc validates with assert and indexing; remote input must not escape as those
        raise ValueError(f"malformed ICE candidate {text[:80]!r}") from exc
    mid = value.get("sdpMid")
    index = value.get("sdpMLineIndex")
    candidate.sdpMid = mid if isinstance(mid, str) else None
    candidate.sdpMLineIndex = index if isinstance(index, int) else None
    return candidate


__all__ = ["AppMessageListener", "WebRtcTransport"]
