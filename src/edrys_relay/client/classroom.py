"""One API to join an Edrys classroom over WebSocket or WebRTC, falling back by itself.

``transport="auto"`` starts on WebRTC and switches to the y-websocket door of the same server when
WebRTC cannot work: no signaling server answers within ``options.webrtc_fallback_seconds``; or
peers show up on signaling but no data channel opens within that time; or nobody else is on
signaling and the room is in use on the WebSocket door (it has content or members there: a
classroom in Websocket mode). An empty room stays on WebRTC (a classroom in WebRTC mode may fill
later). :attr:`Classroom.transport` and :attr:`Classroom.transport_reason` say which and why.

On WebRTC an empty room counts as synced, since no peer holds anything newer: at once when every
signaling server counts us as the room's only subscriber, else after ``options.empty_room_seconds``
without a word from a peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pycrdt

from edrys_relay.client.awareness import AwarenessListener
from edrys_relay.client.document import SharedDocument
from edrys_relay.client.options import ClientOptions, Transport
from edrys_relay.client.urls import server_url as parse_server_url
from edrys_relay.client.urls import signaling_url
from edrys_relay.client.websocket import WebSocketTransport, room_is_active, room_url
from edrys_relay.protocol.yjs import encode_awareness

if TYPE_CHECKING:
    from edrys_relay.client.webrtc import WebRtcTransport

logger = logging.getLogger(__name__)

AWARENESS_CHECK_SECONDS = 3.0
CLOSE_FLUSH_SECONDS = 1.0
MessageListener = Callable[[str, Any], None]


class Classroom:
    """A member of one classroom room: a synced pycrdt ``Doc``, awareness and app messages.

    Use ``async with Classroom(server, room) as classroom:``, then
    ``await classroom.wait_synced()`` inside an ``asyncio.timeout``. ``server_url`` is
    ``ws(s)://HOST:PORT``, ``http(s)://HOST:PORT`` or ``HOST:PORT``; a bad one, or an empty room
    name, raises ``ValueError``.
    """

    def __init__(
        self,
        server_url: str,
        room: str,
        *,
        transport: Transport = "auto",
        options: ClientOptions | None = None,
        doc: pycrdt.Doc[Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> None:
        if transport not in ("auto", "websocket", "webrtc"):
            raise ValueError(f"unknown transport {transport!r}")
        if not room:
            raise ValueError("the room name is empty")
        self.server_url = parse_server_url(server_url)
        self.room = room
        self.mode: Transport = transport
        self.options = options or ClientOptions()
        self.signaling_urls = [signaling_url(url) for url in self.options.signaling_urls] or [
            self.server_url + "/"
        ]
        self.params = params
        self.shared = SharedDocument(doc)
        self.synced = asyncio.Event()
        """Set while in sync with the server or at least one peer, or alone in an empty room."""
        self.transport: str | None = None
        self.transport_reason = "not started"
        self._active: WebSocketTransport | WebRtcTransport | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._message_listeners: list[MessageListener] = []

    # -- state --------------------------------------------------------------------------------

    @property
    def doc(self) -> pycrdt.Doc[Any]:
        return self.shared.doc

    @property
    def client_id(self) -> int:
        return self.shared.awareness.client_id

    @property
    def connected(self) -> bool:
        """Whether the transport is connected to its server (the room's door, or signaling)."""
        active = self._active
        if active is None:
            return False
        if isinstance(active, WebSocketTransport):
            return active.connected.is_set()
        return active.signaling_open

    @property
    def problem(self) -> str | None:
        """Why the transport's last connection failed or ended; None again once one opens."""
        return None if self._active is None else self._active.last_error

    @property
    def links(self) -> int:
        """Open links that receive what we write: the server's door (0 or 1), or WebRTC peers."""
        return 0 if self._active is None else self._active.link_count

    def peers(self) -> dict[int, Any]:
        """Awareness states of the other members, by client ID."""
        return self.shared.awareness.peers()

    def add_awareness_listener(self, listener: AwarenessListener) -> None:
        self.shared.awareness.add_listener(listener)

    def add_message_listener(self, listener: MessageListener) -> None:
        """``listener(peer_id, value)`` for Edrys custom messages (WebRTC only)."""
        self._message_listeners.append(listener)

    def set_presence(self, state: Any) -> None:
        """Set our awareness state (any JSON value; ``None`` removes it) and publish it."""
        update = self.shared.awareness.set_local_state(state, _now())
        if self._active is not None:
            self._active.broadcast(encode_awareness(update))

    def send_message(self, value: Any) -> int:
        """Send an Edrys custom message to every WebRTC peer; return the number reached.

        The WebSocket transport has no app messages (Edrys tunnels them through awareness).
        """
        if self._active is None or self._active.name != "webrtc":
            return 0
        return self._active.send_app_message(value)  # type: ignore[union-attr]

    async def wait_synced(self) -> None:
        """Wait until in sync with the server or a peer, or alone in an empty room (wrap in a
        timeout)."""
        await self.synced.wait()

    async def flush(self) -> None:
        """Wait until what we wrote has left this process (wrap in a timeout)."""
        if self._active is not None:
            await self._active.flush()

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Classroom:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        if self.mode == "websocket":
            await self._use_websocket("transport='websocket' requested")
        else:
            rtc = self._webrtc()
            await rtc.start()
            self._active, self.transport = rtc, "webrtc"
            if self.mode == "webrtc":
                self.transport_reason = "transport='webrtc' requested"
                self._tasks.append(asyncio.create_task(self._notice_empty(rtc), name="empty"))
            else:
                self.transport_reason = "auto: on WebRTC, waiting for peers"
                self._tasks.append(asyncio.create_task(self._supervise(rtc), name="auto"))
        self._tasks.append(asyncio.create_task(self._tick_awareness(), name="awareness"))

    async def close(self) -> None:
        """Say goodbye (awareness removal), stop the transport and every task."""
        if self._active is not None and self.shared.awareness.local_state is not None:
            self.set_presence(None)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_FLUSH_SECONDS):
                    await self.flush()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._active is not None:
            await self._active.close()
            self._active = None

    def _webrtc(self) -> WebRtcTransport:
        from edrys_relay.client.webrtc import WebRtcTransport  # aiortc takes ~0.2 s to import

        urls = self.signaling_urls
        return WebRtcTransport(
            self.shared, self.room, urls, self.options, self.synced, self._on_message
        )

    async def _use_websocket(self, reason: str) -> None:
        url = room_url(self.server_url, self.room, self.params)
        ws = WebSocketTransport(self.shared, url, self.options, self.synced)
        await ws.start()
        self._active, self.transport, self.transport_reason = ws, "websocket", reason

    async def _supervise(self, rtc: WebRtcTransport) -> None:
        """Auto mode: stay on WebRTC once a channel opens; fall back when it cannot work."""
        seconds = self.options.webrtc_fallback_seconds
        if not await _within(rtc.signaling_connected.wait(), seconds):
            await self._fall_back(rtc, f"no signaling server reachable within {seconds}s")
            return
        empty = await self._room_is_empty(rtc)
        if empty or not await _within(rtc.peers_seen.wait(), seconds):
            url = room_url(self.server_url, self.room, self.params)
            if await room_is_active(url, self.options):
                reason = "no WebRTC peer, but the room is active on the WebSocket door"
                await self._fall_back(rtc, reason)
                return
            if empty:
                self.transport_reason = "auto: on WebRTC, the room is empty"
                self.synced.set()
            else:
                self.transport_reason = "auto: on WebRTC, waiting for peers"
            await rtc.peers_seen.wait()
        if not await _within(rtc.channel_opened.wait(), seconds):
            reason = f"peers present on signaling but no data channel opened within {seconds}s"
            await self._fall_back(rtc, reason)
            return
        self.transport_reason = "auto: WebRTC data channel open"

    async def _notice_empty(self, rtc: WebRtcTransport) -> None:
        """WebRTC mode: an empty room counts as synced."""
        await rtc.signaling_connected.wait()
        if await self._room_is_empty(rtc):
            self.synced.set()

    async def _room_is_empty(self, rtc: WebRtcTransport) -> bool:
        """Whether nobody else is in the room, once signaling is connected.

        Peers in the room answer our announce at once (with an offer), so: empty when every
        signaling server counts us as the only subscriber, or, where a server does not count, when
        no peer spoke within ``empty_room_seconds``. Subscribers counted but silent: not empty.
        """
        await _within(
            _first(rtc.peers_seen.wait(), rtc.subscribers_counted.wait()),
            self.options.empty_room_seconds,
        )
        if rtc.peers_seen.is_set():
            return False
        return rtc.alone is not False  # counted alone, or not counted and the time is up

    async def _fall_back(self, rtc: WebRtcTransport, reason: str) -> None:
        logger.info("auto: falling back to WebSocket: %s", reason)
        await rtc.close()
        await self._use_websocket(f"auto: {reason}")

    async def _tick_awareness(self) -> None:
        options = self.options
        while True:
            await asyncio.sleep(AWARENESS_CHECK_SECONDS)
            update = self.shared.awareness.tick(
                _now(), options.awareness_renew_seconds, options.awareness_timeout
            )
            if update is not None and self._active is not None:
                self._active.broadcast(encode_awareness(update))

    def _on_message(self, peer: str, value: Any) -> None:
        for listener in self._message_listeners:
            listener(peer, value)


def _now() -> float:
    return asyncio.get_running_loop().time()


async def _within(waiting: Coroutine[Any, Any, Any], seconds: float) -> bool:
    """Await ``waiting`` for at most ``seconds``; whether it finished."""
    try:
        async with asyncio.timeout(seconds):
            await waiting
    except TimeoutError:
        return False
    return True


async def _first(*waiting: Coroutine[Any, Any, Any]) -> None:
    """Wait until one of ``waiting`` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(each) for each in waiting]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


__all__ = ["Classroom", "MessageListener"]
