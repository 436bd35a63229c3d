"""The peer connections and data channels of one y-webrtc room, on aiortc (protocols.md §4).

Shared by the Python client (:class:`~edrys_relay.client.webrtc.WebRtcTransport`) and the
server's WebRTC bridge (``server/bridge.py``). :class:`PeerLinks` does the WebRTC part and
nothing else: what a signal means is decided by the sans-I/O
:class:`~edrys_relay.protocol.webrtc_peers.PeerTable` (who connects to whom, glare, §4.4);
how signals travel and what the y-protocols messages do belong to its owner, which passes a
:class:`SignalPath` and a :class:`LinkHandler` in.

* Peer connections (§4.7): the initiator makes the one data channel and an offer that carries
  all its candidates (aiortc gathers before ``setLocalDescription`` returns); browsers'
  trickled candidates are parsed and added, buffered until the remote description is set.
* Data channels (§4.6): every message framed with the fork's 40-byte chunk header (``"edrys"``)
  or sent as is (``"plain"``, upstream npm y-webrtc). With ``framing=None`` each link takes the
  framing of the first message the peer sends (both y-webrtc flavours send their sync step 1
  as soon as the channel opens) and stays silent until then.
* Edrys' own messages (§5.5) are handled here: with the fork framing our user id (43) and
  signed challenge (44) go out when the link is ready, the peer's are verified, and custom
  messages (42) are handed to the owner.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

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

from edrys_relay.client.options import ClientOptions, Framing
from edrys_relay.protocol.chunking import ChunkEncoder, Reassembler, detect_framing
from edrys_relay.protocol.edrys_identity import (
    HANDSHAKE,
    USER_ID,
    Identity,
    decode_handshake,
    decode_user_id,
    verify_challenge,
)
from edrys_relay.protocol.errors import ProtocolError
from edrys_relay.protocol.lib0 import Decoder
from edrys_relay.protocol.webrtc_peers import Action, Connect, Deliver, PeerTable

logger = logging.getLogger(__name__)

EDRYS_CUSTOM_MESSAGE = 42
MAX_BUFFERED_CANDIDATES = 64

# what a bad or ill-timed offer, answer or candidate makes aiortc (or our parsing of it) raise;
# aiortc checks remote SDP with assert and indexing, so those count as bad input here too
RTC_ERRORS = (
    AssertionError,
    IndexError,
    ValueError,
    KeyError,
    TypeError,
    InvalidAccessError,
    InvalidStateError,
    OperationError,
)


class Link:
    """One peer connection and its data channel."""

    def __init__(
        self, remote: str, pc: RTCPeerConnection, options: ClientOptions, framing: Framing | None
    ) -> None:
        self.remote = remote
        self.pc = pc
        self.options = options
        self.channel: RTCDataChannel | None = None
        self.lock = asyncio.Lock()
        self.candidates: list[Any] = []
        self.remote_described = False
        self.channel_open = False
        self.open = False
        """The channel is open and the framing known: messages flow both ways."""
        self.synced = False
        self.closed = False
        self.claimed_user: str | None = None
        self.user_id: str | None = None
        self.framing: Framing | None = None
        self.encoder: ChunkEncoder | None = None
        self.reassembler: Reassembler | None = None
        if framing is not None:
            self.use_framing(framing)

    def use_framing(self, framing: Framing) -> None:
        self.framing = framing
        if framing == "edrys":
            self.encoder = ChunkEncoder()
            self.reassembler = Reassembler(max_message_size=self.options.max_message)

    def send(self, message: bytes) -> bool:
        """Send one application message; False if the link must be dropped (backlog)."""
        channel = self.channel
        if channel is None or channel.readyState != "open" or self.framing is None:
            return True  # as the fork does: dropped; the next handshake resyncs
        if channel.bufferedAmount > self.options.max_buffered_bytes:
            return False
        packets = [message] if self.encoder is None else self.encoder.encode(message)
        for packet in packets:
            channel.send(packet)
        return True

    def unframe(self, packet: bytes) -> bytes | None:
        return packet if self.reassembler is None else self.reassembler.feed(packet)


class LinkHandler(Protocol):
    """What a :class:`PeerLinks` owner does with its links."""

    def link_ready(self, link: Link) -> None:
        """The link carries messages now: greet the peer (sync step 1, awareness)."""
        ...

    def link_message(self, link: Link, message: bytes) -> None:
        """One y-protocols message from the peer (any type but Edrys' 42-44).

        Raises:
            ProtocolError: the message is bad; the link is dropped.
        """
        ...

    def link_app_message(self, link: Link, value: Any) -> None:
        """An Edrys custom message (42) with its JSON text parsed."""
        ...

    def link_closed(self, link: Link) -> None:
        """The link has gone (it was open or not)."""
        ...


class SignalPath(Protocol):
    """How the owner publishes our signaling messages into the room."""

    async def send_signal(self, remote: str, inner: dict[str, Any]) -> None:
        """Publish ``inner`` (a signal for ``remote``, made by the peer table)."""
        ...

    async def reannounce(self) -> None:
        """Announce us again: after a link dropped, peers without a link to us may offer."""
        ...


class PeerLinks:
    """All links of one room: created and fed from :class:`PeerTable` actions."""

    def __init__(
        self,
        room: str,
        table: PeerTable,
        options: ClientOptions,
        handler: LinkHandler,
        signals: SignalPath,
        *,
        framing: Framing | None,
        identity: Identity | None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.room = room
        self.table = table
        self.options = options
        self.links: dict[str, Link] = {}
        self.identity = identity
        self.channel_opened = asyncio.Event()
        self._framing = framing
        self._handler = handler
        self._signals = signals
        self._clock_ms = clock_ms or unix_ms
        self._tasks: set[asyncio.Task[None]] = set()
        self._dropping: set[asyncio.Task[None]] = set()

    # -- lifecycle ----------------------------------------------------------------------------

    async def close(self) -> None:
        """Cancel pending negotiations and close every link (no reannounce)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # drops run to the end: aiortc's close() never finishes if cancelled once
        await asyncio.gather(*self._dropping, return_exceptions=True)
        for link in list(self.links.values()):
            await self._drop(link, reannounce=False)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def spawn_drop(
        self, link: Link, *, reannounce: bool = True, forget: bool = True
    ) -> asyncio.Task[None]:
        """Drop ``link`` in a task that :meth:`close` awaits and never cancels.

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

    def send(self, link: Link, message: bytes) -> None:
        """Send on one link; a link whose backlog is too large is dropped."""
        if not link.send(message):
            logger.warning("%s: data channel backlog too large, dropping", link.remote)
            self.spawn_drop(link)

    def broadcast(self, message: bytes, *, exclude: Link | None = None) -> None:
        """Send ``message`` on every open data channel (except ``exclude``)."""
        for link in list(self.links.values()):
            if link is not exclude and link.open:
                self.send(link, message)

    # -- signals ------------------------------------------------------------------------------

    async def act(self, action: Action) -> None:
        """Carry out what the peer table decided for one received signaling message."""
        try:
            if isinstance(action, Connect):
                await self._connect(action.remote)
            else:
                await self._deliver(action)
        except RTC_ERRORS as exc:
            logger.info("%s: WebRTC negotiation failed: %s", action.remote, exc)
            link = self.links.get(action.remote)
            if link is not None:
                self.spawn_drop(link)

    async def _send_signal(self, link: Link, signal: dict[str, Any]) -> None:
        token = time.time() * 1000 + random.random()
        await self._signals.send_signal(link.remote, self.table.signal(link.remote, signal, token))

    # -- peer connections ---------------------------------------------------------------------

    def _new_link(self, remote: str) -> Link:
        policy = RTCIceTransportPolicy(self.options.ice_transport_policy)
        servers = [RTCIceServer(urls=url) for url in self.options.ice_servers]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers, iceTransportPolicy=policy))
        link = Link(remote, pc, self.options, self._framing)
        self.links[remote] = link

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            self._attach(link, channel)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self.spawn_drop(link)

        self._spawn(self._expire_unopened(link), f"open timeout {remote}")
        return link

    async def _expire_unopened(self, link: Link) -> None:
        await asyncio.sleep(self.options.connect_timeout)
        if not link.open and not link.closed:
            logger.info("%s: no data channel within %ss", link.remote, self.options.connect_timeout)
            self.spawn_drop(link)

    async def _connect(self, remote: str) -> None:
        link = self._new_link(remote)
        async with link.lock:
            self._attach(link, link.pc.createDataChannel(os.urandom(20).hex()))
            await link.pc.setLocalDescription(await link.pc.createOffer())
            await self._send_signal(link, {"type": "offer", "sdp": link.pc.localDescription.sdp})

    async def _deliver(self, action: Deliver) -> None:
        old = self.links.get(action.remote)
        if action.replace and old is not None:
            await asyncio.shield(self.spawn_drop(old, reannounce=False, forget=False))
        link = self._new_link(action.remote) if action.create else self.links.get(action.remote)
        if link is None:
            return
        async with link.lock:
            await self._apply_signal(link, action.signal)

    async def _apply_signal(self, link: Link, signal: dict[str, Any]) -> None:
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
            candidate = parse_candidate(signal.get("candidate"))
            if candidate is None:
                return
            if link.remote_described:
                await pc.addIceCandidate(candidate)
            elif len(link.candidates) < MAX_BUFFERED_CANDIDATES:
                link.candidates.append(candidate)

    async def _remote_described(self, link: Link) -> None:
        link.remote_described = True
        candidates, link.candidates = link.candidates, []
        for candidate in candidates:
            await link.pc.addIceCandidate(candidate)

    async def _drop(self, link: Link, *, reannounce: bool = True, forget: bool = True) -> None:
        if link.closed:
            return
        link.closed, link.open = True, False
        if self.links.get(link.remote) is link:
            del self.links[link.remote]
            if forget:
                self.table.closed(link.remote)
        self._handler.link_closed(link)
        await link.pc.close()
        if reannounce:
            await self._signals.reannounce()

    # -- data channels ------------------------------------------------------------------------

    def _attach(self, link: Link, channel: RTCDataChannel) -> None:
        link.channel = channel

        @channel.on("open")
        def on_open() -> None:
            self._channel_opened(link)

        @channel.on("message")
        def on_message(packet: bytes | str) -> None:
            if isinstance(packet, bytes):
                self._on_packet(link, packet)

        @channel.on("close")
        def on_close() -> None:
            self.spawn_drop(link)

        if channel.readyState == "open":
            self._channel_opened(link)

    def _channel_opened(self, link: Link) -> None:
        if link.channel_open or link.closed:
            return
        link.channel_open = True
        if link.framing is not None:
            self._ready(link)

    def _ready(self, link: Link) -> None:
        link.open = True
        self.channel_opened.set()
        self._handler.link_ready(link)
        if self.identity is not None and link.framing == "edrys":
            for message in self.identity.messages(self.room, self._clock_ms()):
                self.send(link, message)

    def _on_packet(self, link: Link, packet: bytes) -> None:
        if link.closed:
            return
        try:
            if link.framing is None:
                link.use_framing(detect_framing(packet))
                logger.debug("%s: %s framing (%s)", link.remote, link.framing, packet[:48].hex())
                self._ready(link)
            message = link.unframe(packet)
            if not message:
                return  # incomplete; or upstream y-webrtc's empty answer to a type it lacks
            kind = Decoder(message).read_var_uint()
            if kind in (EDRYS_CUSTOM_MESSAGE, USER_ID, HANDSHAKE):
                self._on_edrys(link, kind, message)
            else:
                self._handler.link_message(link, message)
        except ProtocolError as exc:
            logger.warning("%s: protocol error, closing: %s", link.remote, exc)
            self.spawn_drop(link)

    def _on_edrys(self, link: Link, kind: int, message: bytes) -> None:
        """Edrys' own messages (§5.5): 42 custom message, 43 user id, 44 signed challenge."""
        if kind == USER_ID:
            link.claimed_user = decode_user_id(message)
        elif kind == HANDSHAKE:
            public_key, signature = decode_handshake(message)
            if link.claimed_user is not None and verify_challenge(
                public_key, signature, self.room, self._clock_ms()
            ):
                link.user_id = link.claimed_user
            else:
                logger.info("%s: Edrys handshake did not verify", link.remote)
        else:
            decoder = Decoder(message)
            decoder.read_var_uint()
            text = decoder.read_var_string()
            try:
                value = json.loads(text)
            except ValueError:
                return
            self._handler.link_app_message(link, value)


def unix_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_candidate(value: Any) -> Any:
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


__all__ = [
    "EDRYS_CUSTOM_MESSAGE",
    "RTC_ERRORS",
    "Link",
    "LinkHandler",
    "PeerLinks",
    "SignalPath",
    "parse_candidate",
    "unix_ms",
]
