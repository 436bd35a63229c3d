"""An empty room counts as synced on WebRTC (no peer holds anything newer), in auto and webrtc mode.

No data channel opens in these tests (nobody else is a WebRTC peer), so they need no network
namespace: only the signaling door and, in auto mode, the y-websocket door of an in-process server.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from websockets.asyncio.client import connect

from edrys_relay.client import Classroom, ClientOptions
from edrys_relay.client.webrtc import WebRtcTransport
from edrys_relay.security.tokens import Role, TokenSigner
from edrys_relay.server.app import RelayServer
from tests.conftest import StartRelay

SECRET = "empty-room-secret-0123456789"
SYNC = 10.0  # generous bound on a join; nothing here waits for a timer this long


def room_name() -> str:
    return "Empty" + uuid.uuid4().hex[:8]


def rtc_of(classroom: Classroom) -> WebRtcTransport:
    active = classroom._active
    assert isinstance(active, WebRtcTransport)
    return active


async def test_auto_in_an_empty_room_is_synced_on_webrtc(relay: RelayServer) -> None:
    # a long timer: only the server's subscriber count can make this return in time
    options = ClientOptions(empty_room_seconds=60.0)
    url = f"ws://127.0.0.1:{relay.port}"
    async with Classroom(url, room_name(), transport="auto", options=options) as classroom:
        async with asyncio.timeout(SYNC):
            await classroom.wait_synced()
        assert classroom.transport == "webrtc"
        assert classroom.transport_reason == "auto: on WebRTC, the room is empty"
        assert rtc_of(classroom).alone is True
        assert classroom.links == 0
        assert classroom.connected and classroom.problem is None


async def test_webrtc_mode_in_an_empty_room_is_synced(relay: RelayServer) -> None:
    options = ClientOptions(empty_room_seconds=60.0)
    url = f"ws://127.0.0.1:{relay.port}"
    async with Classroom(url, room_name(), transport="webrtc", options=options) as classroom:
        async with asyncio.timeout(SYNC):
            await classroom.wait_synced()
        assert classroom.transport_reason == "transport='webrtc' requested"


async def test_without_a_subscriber_count_the_timer_decides(start_relay: StartRelay) -> None:
    """With access control on, the server hides ``clients``: empty_room_seconds decides."""
    relay = await start_relay(auth_secrets=(SECRET,))
    room = room_name()
    token = TokenSigner((SECRET,)).mint(room, Role.WRITE, now=int(time.time()), ttl_seconds=600)
    signaling = f"ws://127.0.0.1:{relay.port}/?token={token}"
    options = ClientOptions(empty_room_seconds=0.5, signaling_urls=(signaling,))
    url = f"ws://127.0.0.1:{relay.port}"
    async with Classroom(url, room, transport="webrtc", options=options) as classroom:
        rtc = rtc_of(classroom)
        async with asyncio.timeout(SYNC):
            await rtc.signaling_connected.wait()
            await classroom.wait_synced()
        assert rtc.alone is None  # never counted
        assert classroom.signaling_urls == [signaling]


async def test_a_silent_subscriber_keeps_the_room_from_counting_as_empty(
    relay: RelayServer,
) -> None:
    room = room_name()
    async with connect(f"ws://127.0.0.1:{relay.port}/", compression=None) as lurker:
        await lurker.send(json.dumps({"type": "subscribe", "topics": [room]}))
        await lurker.send('{"type":"ping"}')
        assert json.loads(await lurker.recv()) == {"type": "pong"}  # the subscription is in
        options = ClientOptions(empty_room_seconds=0.3)
        url = f"ws://127.0.0.1:{relay.port}"
        async with Classroom(url, room, transport="webrtc", options=options) as classroom:
            rtc = rtc_of(classroom)
            async with asyncio.timeout(SYNC):
                await rtc.subscribers_counted.wait()
            assert rtc.alone is False
            await asyncio.sleep(1.0)  # past empty_room_seconds: counted, so the timer is moot
            assert not classroom.synced.is_set()


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("localhost:1234", "ws://localhost:1234"),
        ("http://localhost:1234/", "ws://localhost:1234"),
        ("https://school.example", "wss://school.example"),
    ],
)
def test_classroom_takes_the_addresses_people_type(server: str, expected: str) -> None:
    classroom = Classroom(server, "R")
    assert classroom.server_url == expected
    assert classroom.signaling_urls == [expected + "/"]


@pytest.mark.parametrize(
    ("server", "room", "options"),
    [
        ("ftp://x", "R", ClientOptions()),
        ("ws://127.0.0.1:1234", "", ClientOptions()),
        ("ws://127.0.0.1:1234", "R", ClientOptions(signaling_urls=("ws://",))),
    ],
)
def test_classroom_refuses_bad_addresses(server: str, room: str, options: ClientOptions) -> None:
    with pytest.raises(ValueError):
        Classroom(server, room, options=options)


async def test_leaving_closes_the_signaling_connection_normally(
    relay: RelayServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="edrys_relay.server.app")
    url = f"ws://127.0.0.1:{relay.port}"
    async with Classroom(url, room_name(), transport="webrtc") as classroom:
        async with asyncio.timeout(SYNC):
            await classroom.wait_synced()
    async with asyncio.timeout(SYNC):
        while not any("closed" in r.getMessage() for r in caplog.records):
            await asyncio.sleep(0.01)
    closes = [r.getMessage() for r in caplog.records if " closed " in r.getMessage()]
    assert closes and all("code=1000" in line for line in closes), closes
