"""y-webrtc signaling and ``/stream`` frames between clients of different nodes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.cluster.redisproc import Cluster
from tests.server.streamkit import binary_frame, fake_jpeg, json_frame, seq_of


async def recv_json(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            value: dict[str, Any] = json.loads(await ws.recv())
            if value.get("type") not in ("ping", "pong"):
                return value


async def test_a_publish_reaches_subscribers_on_the_other_node(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    async with connect(a.url) as alice, connect(b.url) as bob, connect(b.url) as eve:
        await bob.send(json.dumps({"type": "subscribe", "topics": ["room-t"]}))
        await eve.send(json.dumps({"type": "subscribe", "topics": ["other"]}))
        await alice.send(json.dumps({"type": "subscribe", "topics": ["room-t"]}))
        await asyncio.sleep(0.3)  # subscriptions reach Redis; y-webrtc re-announces anyway
        offer = {"type": "publish", "topic": "room-t", "data": {"z": 1, "a": "offer"}}
        await alice.send(json.dumps(offer))
        got = await recv_json(bob)
        assert got["topic"] == "room-t" and got["data"] == {"z": 1, "a": "offer"}
        assert list(got["data"]) == ["z", "a"]  # key order kept across nodes
        assert (await recv_json(alice))["data"] == offer["data"]  # the sender's own node
        await bob.send(json.dumps({"type": "publish", "topic": "room-t", "data": "answer"}))
        assert (await recv_json(alice))["data"] == "answer"
        await eve.send(json.dumps({"type": "ping"}))
        assert json.loads(await eve.recv()) == {"type": "pong"}  # nothing else came to eve


async def test_stream_frames_and_source_changes_cross_nodes(cluster: Cluster) -> None:
    a, b = await cluster.start(2, "--stream-ping-interval=60")
    async with (
        connect(f"{b.url}/stream", max_size=None) as viewer,
        connect(f"{b.url}/stream?binary=1", max_size=None) as binary_viewer,
        connect(f"{a.url}/stream", max_size=None) as source,
        connect(f"{a.url}/stream", max_size=None) as rival,
    ):
        for ws in (viewer, binary_viewer, source, rival):
            assert (await recv_json(ws))["type"] == "info"
        await viewer.send(json.dumps({"type": "join-room", "roomId": "lab"}))
        await binary_viewer.send(json.dumps({"type": "join-room", "roomId": "lab"}))
        await asyncio.sleep(0.3)  # the viewers' node subscribes to the room
        await source.send(json.dumps({"type": "register-source", "roomId": "lab"}))
        assert await recv_json(source) == {"type": "source-registered", "roomId": "lab"}
        assert await recv_json(viewer) == {"type": "source-available", "roomId": "lab"}
        assert await recv_json(binary_viewer) == {"type": "source-available", "roomId": "lab"}
        for seq in range(5):
            await source.send(json_frame(seq, fake_jpeg(50_000, seq)))
            assert seq_of(await viewer.recv()) == seq
            got = await binary_viewer.recv()
            assert isinstance(got, bytes) and seq_of(got) == seq
        await source.send(binary_frame(5, fake_jpeg(1000, 5)))
        assert seq_of(await viewer.recv()) == 5
        # A second node's source for the same room is refused: one source per room.
        async with connect(f"{b.url}/stream", max_size=None) as second:
            assert (await recv_json(second))["type"] == "info"
            await second.send(json.dumps({"type": "register-source", "roomId": "lab"}))
            reply = await recv_json(second)
            assert reply["type"] == "error" and "source" in reply["message"]
        await source.close()
        assert await recv_json(viewer) == {"type": "source-disconnected", "roomId": "lab"}
        # a viewer that joins later on another node hears of a source registered elsewhere
        await rival.send(json.dumps({"type": "register-source", "roomId": "lab"}))
        assert await recv_json(rival) == {"type": "source-registered", "roomId": "lab"}
        async with connect(f"{b.url}/stream", max_size=None) as late:
            assert (await recv_json(late))["type"] == "info"
            await asyncio.sleep(0.3)
            await late.send(json.dumps({"type": "join-room", "roomId": "lab"}))
            assert await recv_json(late) == {"type": "source-available", "roomId": "lab"}
