"""Auto transport: WebRTC made impossible, so the client ends on WebSocket and syncs.

Runs in a private network namespace (conftest.py). Peer ``blocked`` is on WebRTC with
``ice_transport_policy="relay"`` and no TURN server: it has no ICE candidate at all, so it shows
up on signaling but no data channel can ever open. A WebSocket member holds the content. The auto
client sees the blocked peer, waits ``webrtc_fallback_seconds`` for a channel, falls back to the
y-websocket door of the same server and syncs.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import pycrdt

from edrys_relay.client import Classroom, ClientOptions
from tests.conftest import wait_for

if TYPE_CHECKING:
    from .conftest import RelayProcess

FALLBACK_SECONDS = 3.0


async def test_auto_falls_back_to_websocket_when_no_channel_opens(
    relay_server: RelayProcess,
) -> None:
    room = "Auto" + uuid.uuid4().hex[:8]
    url = f"ws://127.0.0.1:{relay_server.port}"
    blocked_options = ClientOptions(ice_transport_policy="relay", connect_timeout=2.0)
    auto_options = ClientOptions(webrtc_fallback_seconds=FALLBACK_SECONDS, connect_timeout=2.0)
    async with (
        Classroom(url, room, transport="websocket") as holder,
        Classroom(url, room, transport="webrtc", options=blocked_options) as blocked,
    ):
        holder.doc.get("m", type=pycrdt.Map)["content"] = "from the websocket member"
        async with Classroom(url, room, transport="auto", options=auto_options) as auto:
            assert auto.transport == "webrtc"
            # the fallback happens within its timeout (plus signaling and connect slack)
            async with asyncio.timeout(FALLBACK_SECONDS + 10):
                await auto.wait_synced()
            assert auto.transport == "websocket"
            assert "no data channel opened within 3.0s" in auto.transport_reason
            shared = auto.doc.get("m", type=pycrdt.Map)
            assert shared.to_py().get("content") == "from the websocket member"
            shared["reply"] = "from the auto client"
            holder_map = holder.doc.get("m", type=pycrdt.Map)
            await wait_for(lambda: holder_map.to_py().get("reply") == "from the auto client", 10)
        assert blocked.transport == "webrtc"
        assert blocked._active.link_count == 0  # type: ignore[union-attr]


async def test_auto_stays_on_webrtc_when_a_channel_opens(relay_server: RelayProcess) -> None:
    room = "AutoRtc" + uuid.uuid4().hex[:8]
    url = f"ws://127.0.0.1:{relay_server.port}"
    options = ClientOptions(webrtc_fallback_seconds=FALLBACK_SECONDS)
    async with Classroom(url, room, transport="webrtc") as peer:
        peer.doc.get("m", type=pycrdt.Map)["content"] = "from the WebRTC peer"
        async with Classroom(url, room, transport="auto", options=options) as auto:
            async with asyncio.timeout(FALLBACK_SECONDS + 10):
                await auto.wait_synced()
            shared = auto.doc.get("m", type=pycrdt.Map)
            assert shared.to_py().get("content") == "from the WebRTC peer"
            # the supervisor decided for WebRTC and ended: no fallback can follow
            await wait_for(lambda: auto.transport_reason == "auto: WebRTC data channel open", 10)
            assert auto.transport == "webrtc"


async def test_auto_uses_websocket_for_a_room_active_there(relay_server: RelayProcess) -> None:
    room = "AutoWs" + uuid.uuid4().hex[:8]
    url = f"ws://127.0.0.1:{relay_server.port}"
    options = ClientOptions(webrtc_fallback_seconds=FALLBACK_SECONDS)
    async with Classroom(url, room, transport="websocket") as holder:
        holder.doc.get("m", type=pycrdt.Map)["content"] = "websocket classroom"
        async with asyncio.timeout(10):
            await holder.wait_synced()
        async with Classroom(url, room, transport="auto", options=options) as auto:
            async with asyncio.timeout(FALLBACK_SECONDS + 10):
                await auto.wait_synced()
            assert auto.transport == "websocket"
            assert "active on the WebSocket door" in auto.transport_reason
            shared = auto.doc.get("m", type=pycrdt.Map)
            assert shared.to_py() == {"content": "websocket classroom"}


async def test_auto_without_signaling_uses_websocket(relay_server: RelayProcess) -> None:
    url = f"ws://127.0.0.1:{relay_server.port}"
    options = ClientOptions(
        webrtc_fallback_seconds=1.0, signaling_urls=("ws://127.0.0.1:9/",), backoff_max=0.2
    )
    async with Classroom(url, "AutoNoSig", transport="auto", options=options) as auto:
        async with asyncio.timeout(10):
            await auto.wait_synced()
        assert auto.transport == "websocket"
        assert "no signaling server reachable" in auto.transport_reason


async def test_auto_alone_in_an_empty_room_stays_on_webrtc(relay_server: RelayProcess) -> None:
    url = f"ws://127.0.0.1:{relay_server.port}"
    options = ClientOptions(webrtc_fallback_seconds=1.0)
    room = "AutoAlone" + uuid.uuid4().hex[:8]
    async with Classroom(url, room, transport="auto", options=options) as auto:
        async with asyncio.timeout(10):
            await auto.wait_synced()  # an empty room counts as synced
        assert auto.transport_reason == "auto: on WebRTC, the room is empty"
        assert auto.transport == "webrtc"
        # a peer arriving later is connected to over WebRTC
        async with Classroom(url, room, transport="webrtc") as peer:
            peer.doc.get("m", type=pycrdt.Map)["late"] = True
            await wait_for(lambda: auto.transport_reason == "auto: WebRTC data channel open", 20)
            shared = auto.doc.get("m", type=pycrdt.Map)
            await wait_for(lambda: shared.to_py() == {"late": True}, 10)
