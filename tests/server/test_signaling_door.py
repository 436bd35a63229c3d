"""The y-webrtc signaling door (protocols.md §4.2) on ``/`` and ``/signaling``."""

from __future__ import annotations

import asyncio
import json

import pytest

from edrys_relay.server.app import RelayServer
from tests.conftest import open_ws, wait_for


async def send_json(ws, message: dict) -> None:  # type: ignore[no-untyped-def]
    await ws.send(json.dumps(message))


async def recv_json(ws) -> dict:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(5):
        return json.loads(await ws.recv())


@pytest.mark.parametrize("path", ["/", "/signaling"])
async def test_ping_pong(relay: RelayServer, path: str) -> None:
    async with await open_ws(relay, path) as ws:
        await send_json(ws, {"type": "ping"})
        assert await ws.recv() == '{"type":"pong"}'


async def test_publish_reaches_every_subscriber_including_sender(relay: RelayServer) -> None:
    async with (
        await open_ws(relay, "/") as a,
        await open_ws(relay, "/signaling") as b,
        await open_ws(relay, "/") as outsider,
    ):
        await send_json(a, {"type": "subscribe", "topics": ["room1"]})
        await send_json(b, {"type": "subscribe", "topics": ["room1", "room1"]})
        await send_json(outsider, {"type": "subscribe", "topics": ["room2"]})
        await wait_for(lambda: len(relay.topics.topics.get("room1", ())) == 2)
        data = {"z": "last", "a": [1, 2.5, None], "nested": {"y": True, "b": "x"}}
        await send_json(a, {"type": "publish", "topic": "room1", "data": data})
        for ws in (a, b):
            message = await recv_json(ws)
            assert message == {"type": "publish", "topic": "room1", "data": data, "clients": 2}
            assert list(message["data"]) == ["z", "a", "nested"]
        await send_json(outsider, {"type": "ping"})
        assert await recv_json(outsider) == {"type": "pong"}


async def test_publisher_need_not_be_subscribed(relay: RelayServer) -> None:
    async with await open_ws(relay, "/") as a, await open_ws(relay, "/") as b:
        await send_json(b, {"type": "subscribe", "topics": ["t"]})
        await wait_for(lambda: "t" in relay.topics.topics)
        await send_json(a, {"type": "publish", "topic": "t", "data": "opaque"})
        assert (await recv_json(b))["data"] == "opaque"


async def test_unsubscribe_and_cleanup_on_close(relay: RelayServer) -> None:
    async with await open_ws(relay, "/") as a, await open_ws(relay, "/") as b:
        await send_json(a, {"type": "subscribe", "topics": ["x", "y"]})
        await send_json(b, {"type": "subscribe", "topics": ["x"]})
        await wait_for(lambda: len(relay.topics.topics.get("x", ())) == 2)
        await send_json(b, {"type": "unsubscribe", "topics": ["x", "never-subscribed"]})
        await send_json(a, {"type": "publish", "topic": "x", "data": 1})
        assert (await recv_json(a))["clients"] == 1
        await send_json(b, {"type": "ping"})
        assert await recv_json(b) == {"type": "pong"}  # b got no publish
    await wait_for(lambda: relay.topics.topics == {} and relay.topics.subscriptions == {})


async def test_unknown_types_are_ignored(relay: RelayServer) -> None:
    async with await open_ws(relay, "/") as ws:
        await send_json(ws, {"type": "keep-alive"})
        await send_json(ws, {"type": "ping"})
        assert await recv_json(ws) == {"type": "pong"}
