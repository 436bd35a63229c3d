"""Which signaling topics the WebRTC bridge joins (server/bridge.py), over real signaling.

No WebRTC connection is made here: the test clients publish messages that the y-webrtc peer
rules ignore, so the bridge only shows whether it joined a topic (by announcing itself there)
or left it alone. Data channels are tested in tests/webrtc/test_bridge.py.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from websockets.asyncio.client import ClientConnection

from edrys_relay.protocol.webrtc_crypto import decrypt, derive_key, encrypt
from edrys_relay.server.app import RelayServer
from tests.conftest import StartRelay, open_ws, wait_for

# PeerTable ignores a message of an unknown type: the bridge sees the topic, nothing connects
HELLO = {"type": "hello", "from": "test-peer"}


async def subscribe_and_publish(ws: ClientConnection, topic: str, data: Any) -> None:
    await ws.send(json.dumps({"type": "subscribe", "topics": [topic]}))
    await ws.send(json.dumps({"type": "publish", "topic": topic, "data": data}))


async def next_inner(ws: ClientConnection, topic: str, key: bytes | None) -> Any:
    """The inner object of the next publish on ``topic`` that is not our own (5 s at most)."""
    async with asyncio.timeout(5):
        while True:
            message = json.loads(await ws.recv())
            if message["topic"] != topic:
                continue
            data = message["data"]
            inner = data if key is None else decrypt(key, data)
            if inner != HELLO:
                return inner


async def bridge_relay(start_relay: StartRelay, **overrides: Any) -> RelayServer:
    return await start_relay(bridge_webrtc=True, sweep_interval=0.05, **overrides)


async def test_joins_a_room_with_the_edrys_password_and_leaves_it_when_empty(
    start_relay: StartRelay,
) -> None:
    relay = await bridge_relay(start_relay)
    topic = "Room" + uuid.uuid4().hex[:12]
    key = derive_key("password", topic)
    async with await open_ws(relay, "/") as ws:
        await subscribe_and_publish(ws, topic, encrypt(key, HELLO))
        announce = await next_inner(ws, topic, key)
        assert announce["type"] == "announce"
        assert announce["from"] == relay.bridge.bridged[topic].table.peer_id  # type: ignore[union-attr]
        assert len(relay.topics.topics[topic]) == 2
        assert relay.health()["bridge"]["rooms"] == 1
        await ws.send(json.dumps({"type": "unsubscribe", "topics": [topic]}))
        await wait_for(lambda: topic not in relay.topics.topics)
        assert relay.health()["bridge"]["rooms"] == 0


async def test_plaintext_rooms_are_joined_in_plaintext(start_relay: StartRelay) -> None:
    relay = await bridge_relay(start_relay)
    async with await open_ws(relay, "/") as ws:
        await subscribe_and_publish(ws, "plain-room", HELLO)
        announce = await next_inner(ws, "plain-room", None)
        assert announce["type"] == "announce"


async def test_rooms_with_an_unknown_password_or_no_room_name_are_left_alone(
    start_relay: StartRelay,
) -> None:
    relay = await bridge_relay(start_relay)
    secret = "Secret" + uuid.uuid4().hex[:12]
    key = derive_key("not the password", secret)
    async with await open_ws(relay, "/") as ws:
        await subscribe_and_publish(ws, secret, encrypt(key, HELLO))
        await subscribe_and_publish(ws, "stream", HELLO)  # the /stream door, not a room
        await wait_for(lambda: relay.health()["bridge"]["topics_left_alone"] == 2)
        await subscribe_and_publish(ws, secret, encrypt(key, HELLO))  # not probed again
        await asyncio.sleep(0.3)
        assert relay.health()["bridge"]["topics_left_alone"] == 2
        assert len(relay.topics.topics[secret]) == 1
        assert relay.bridge is not None and relay.bridge.bridged == {}


async def test_other_passwords_can_be_configured(start_relay: StartRelay) -> None:
    relay = await bridge_relay(start_relay, bridge_passwords=("one", "two"))
    topic = "Pw" + uuid.uuid4().hex[:12]
    key = derive_key("two", topic)
    async with await open_ws(relay, "/") as ws:
        await subscribe_and_publish(ws, topic, encrypt(key, HELLO))
        announce = await next_inner(ws, topic, key)
        assert announce["type"] == "announce"


async def test_off_by_default(relay: RelayServer) -> None:
    assert relay.bridge is None and relay.topics.observer is None
    assert "bridge" not in relay.health()
