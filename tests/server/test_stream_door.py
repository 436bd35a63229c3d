"""The ``/stream`` door (protocols.md §3) with a Python client and an in-process server."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from websockets.exceptions import ConnectionClosed

from edrys_relay.server.app import RelayServer
from tests.conftest import StartRelay, open_ws, wait_for
from tests.server.streamkit import (
    RawViewer,
    binary_frame,
    fake_jpeg,
    join,
    json_frame,
    recv_json,
    register,
    send_json,
    seq_of,
    stream_client,
    sync,
)

QUIET = {"stream_ping_interval": 60.0}
"""No periodic pings while a test checks message order."""


async def test_full_message_sequence(start_relay: StartRelay) -> None:
    relay = await start_relay(**QUIET)
    viewer, info = await stream_client(relay)
    assert info == {
        "type": "info",
        "message": "Connected to WebSocket streaming server",
        "sources": [],
        "clients": 0,
    }
    source, info = await stream_client(relay, "?userid=teacher")
    assert info["clients"] == 1
    await join(viewer, "lab")
    assert await sync(viewer) == []  # the room has no source yet

    await send_json(source, {"type": "register-source"})
    assert await recv_json(source) == {
        "type": "error",
        "message": "Room ID is required to register as source",
    }
    await send_json(source, {"type": "join-room", "roomId": ""})
    assert await recv_json(source) == {
        "type": "error",
        "message": "Room ID is required to join a room",
    }

    assert await register(source, "lab") == {"type": "source-registered", "roomId": "lab"}
    assert await recv_json(viewer) == {"type": "source-available", "roomId": "lab"}
    assert await sync(source) == []  # not told about itself
    rival, info = await stream_client(relay)
    assert info["sources"] == ["lab"] and info["clients"] == 2
    assert await register(rival, "lab") == {
        "type": "error",
        "message": "Room lab already has an active source",
    }
    late, _ = await stream_client(relay)
    await join(late, "lab")
    assert await recv_json(late) == {"type": "source-available", "roomId": "lab"}

    # frames: the original text, unchanged, to the other clients of the room only
    text = '{"type":"frame",  "data":"data:image/jpeg;base64,/9j/4A==","settings":{"q":0.7}}'
    await source.send(text)
    assert await viewer.recv() == text
    assert await late.recv() == text
    await source.send(text.encode())  # JSON in a binary message goes out as the same text
    assert await viewer.recv() == text
    assert await late.recv() == text
    await rival.send(text)  # not a source
    await send_json(source, {"type": "frame", "data": ""})  # no data
    await send_json(source, {"type": "keep-alive"})  # unknown type
    await source.send("{not json")
    assert await sync(source) == []
    assert await sync(rival) == []
    assert await sync(viewer) == []
    assert relay.streams.stats.messages_ignored == 4

    # ping is answered; pong-response and stats are not
    await send_json(viewer, {"type": "ping", "timestamp": 1234})
    pong = await recv_json(viewer)
    assert list(pong) == ["type", "timestamp", "clientTimestamp"]
    assert pong["type"] == "pong" and pong["clientTimestamp"] == 1234
    await send_json(viewer, {"type": "pong-response", "serverTimestamp": pong["timestamp"]})
    await send_json(viewer, {"type": "stats", "fps": 14, "bufferSize": 0, "dropped": 1})
    assert await sync(viewer) == []
    me = next(c for c in relay.streams.clients if c.reported)
    assert me.reported == {"fps": 14.0, "bufferSize": 0.0, "dropped": 1.0}
    assert me.latency_ms is not None and me.latency_ms >= 0

    # the source leaves: its room hears it, and the room is free for a new source
    await source.close()
    assert await recv_json(viewer) == {"type": "source-disconnected", "roomId": "lab"}
    assert await recv_json(late) == {"type": "source-disconnected", "roomId": "lab"}
    assert await register(rival, "lab") == {"type": "source-registered", "roomId": "lab"}
    assert await recv_json(viewer) == {"type": "source-available", "roomId": "lab"}
    for ws in (viewer, rival, late):
        await ws.close()
    await wait_for(lambda: relay.streams.connection_count == 0 and not relay.streams.rooms)


async def test_periodic_ping_and_dead_clients_are_dropped(start_relay: StartRelay) -> None:
    relay = await start_relay(stream_ping_interval=0.2)
    alive, _ = await stream_client(relay)  # websockets answers WebSocket pings by itself
    dead = await RawViewer.open(relay)  # never answers them
    await wait_for(lambda: relay.streams.connection_count == 2)
    pings = [await recv_json(alive, pings=True) for _ in range(3)]
    assert [p["type"] for p in pings] == ["ping"] * 3
    assert all(list(p["stats"]) == ["clients", "fps", "dropped"] for p in pings)
    await wait_for(lambda: relay.streams.connection_count == 1, timeout=5)
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        async with asyncio.timeout(5):
            while True:
                await dead.recv_message()
    assert (await recv_json(alive, pings=True))["stats"]["clients"] == 1
    await alive.close()


async def test_dead_source_is_replaced(start_relay: StartRelay) -> None:
    relay = await start_relay(**QUIET)
    viewer, _ = await stream_client(relay)
    await join(viewer, "r")
    source = await RawViewer.open(relay)
    source.send_text('{"type":"register-source","roomId":"r"}')
    assert await recv_json(viewer) == {"type": "source-available", "roomId": "r"}
    source.close()  # gone without a closing handshake
    assert await recv_json(viewer) == {"type": "source-disconnected", "roomId": "r"}
    successor, _ = await stream_client(relay)
    assert await register(successor, "r") == {"type": "source-registered", "roomId": "r"}
    await successor.close()
    await viewer.close()


async def test_a_source_moving_to_another_room_frees_the_first(start_relay: StartRelay) -> None:
    relay = await start_relay(**QUIET)
    viewer, _ = await stream_client(relay)
    await join(viewer, "a")
    source, _ = await stream_client(relay)
    await register(source, "a")
    assert await recv_json(viewer) == {"type": "source-available", "roomId": "a"}
    assert await register(source, "b") == {"type": "source-registered", "roomId": "b"}
    assert await recv_json(viewer) == {"type": "source-disconnected", "roomId": "a"}
    assert relay.streams.summary()["sources"] == 1
    await source.close()
    await viewer.close()


async def test_two_rooms_are_isolated(start_relay: StartRelay) -> None:
    relay = await start_relay(**QUIET)
    clients = {}
    for room in ("a", "b"):
        source, _ = await stream_client(relay)
        await register(source, room)
        viewer, _ = await stream_client(relay)
        await join(viewer, room)
        assert await recv_json(viewer) == {"type": "source-available", "roomId": room}
        clients[room] = (source, viewer)
    for seq in range(20):
        for room, (source, _) in clients.items():
            await source.send(json_frame(seq, fake_jpeg(2000), room=room))
    for room, (_, viewer) in clients.items():
        frames = [json.loads(await viewer.recv()) for _ in range(20)]
        assert [f["seq"] for f in frames] == list(range(20))
        assert {f["room"] for f in frames} == {room}
    for room, (source, viewer) in clients.items():
        assert await sync(viewer) == []
        assert await sync(source) == []
        assert relay.streams.rooms[room].frames_in == 20
        await source.close()
        await viewer.close()


@pytest.mark.parametrize("source_kind", ["json", "binary"])
async def test_json_and_binary_viewers_see_every_frame(
    start_relay: StartRelay, source_kind: str
) -> None:
    relay = await start_relay(**QUIET)
    source, _ = await stream_client(relay)
    await register(source, "lab")
    json_viewer, _ = await stream_client(relay)
    await join(json_viewer, "lab")
    by_query, _ = await stream_client(relay, "?binary=1")
    await join(by_query, "lab")
    by_join, _ = await stream_client(relay)
    await join(by_join, "lab", binary=True)
    viewers = (json_viewer, by_query, by_join)
    for viewer in viewers:
        assert await recv_json(viewer) == {"type": "source-available", "roomId": "lab"}
    for seq in range(1, 41):
        image = fake_jpeg(30_000, seq)
        if source_kind == "json":
            await source.send(json_frame(seq, image))
        else:
            await source.send(binary_frame(seq, image))
        received = [await viewer.recv() for viewer in viewers]  # keeping up with the source
        assert [seq_of(m) for m in received] == [seq] * 3
        as_json = json.loads(received[0])
        assert as_json["data"] == "data:image/jpeg;base64," + base64.b64encode(image).decode()
        for message in received[1:]:
            assert isinstance(message, bytes) and message[:4] == b"ESF1"
            assert message[16:] == image
    assert relay.streams.stats.frames_dropped == 0
    for ws in (source, *viewers):
        await ws.close()


async def test_binary_viewer_of_a_non_image_json_frame_gets_the_text(relay: RelayServer) -> None:
    source, _ = await stream_client(relay)
    await register(source, "r")
    viewer, _ = await stream_client(relay, "?binary=true")
    await join(viewer, "r")
    await recv_json(viewer)
    text = '{"type":"frame","data":"blob:not-an-image"}'
    await source.send(text)
    assert await viewer.recv() == text
    await source.close()
    await viewer.close()


async def test_bad_binary_frames_get_an_error_and_the_source_stays(relay: RelayServer) -> None:
    source, _ = await stream_client(relay)
    await register(source, "r")
    await source.send(b"ESF1\x01\x00\x00\x00" + bytes(8) + b"GIF89a")
    assert await recv_json(source) == {
        "type": "error",
        "message": "Invalid binary frame: the image is not image/jpeg",
    }
    await source.send(b"\x00\x01 neither JSON nor a frame")
    assert await sync(source) == []
    assert relay.streams.stats.frames_rejected == 1
    await source.close()


async def test_viewers_per_room_are_capped(start_relay: StartRelay) -> None:
    relay = await start_relay(stream_max_viewers=2, **QUIET)
    source, _ = await stream_client(relay)
    await register(source, "r")
    first, _ = await stream_client(relay)
    second, _ = await stream_client(relay)
    third, _ = await stream_client(relay)
    for viewer in (first, second):
        await join(viewer, "r")
        assert (await recv_json(viewer))["type"] == "source-available"
    await join(third, "r")
    assert await recv_json(third) == {"type": "error", "message": "Room r is full"}
    await join(first, "r")  # re-joining is not a new viewer
    assert (await recv_json(first))["type"] == "source-available"
    await first.close()
    await wait_for(lambda: relay.streams.rooms["r"].viewer_count == 1)
    await join(third, "r")
    assert (await recv_json(third))["type"] == "source-available"
    for ws in (source, second, third):
        await ws.close()


async def test_source_frame_rate_is_capped(start_relay: StartRelay) -> None:
    relay = await start_relay(stream_max_source_fps=20.0, **QUIET)
    source, _ = await stream_client(relay)
    await register(source, "r")
    loop = asyncio.get_running_loop()
    started = loop.time()
    for seq in range(300):  # as fast as the socket takes them
        await source.send(json_frame(seq, b"\xff\xd8\xff"))
    assert await sync(source) == []
    elapsed = loop.time() - started
    stats = relay.streams.stats
    assert stats.frames_in + stats.frames_rate_limited == 300
    assert stats.frames_in <= 20 + 20 * elapsed + 1
    assert stats.frames_rate_limited >= 300 - (20 + 20 * elapsed + 1)
    await source.close()


async def test_oversized_frame_closes_only_its_sender(start_relay: StartRelay) -> None:
    relay = await start_relay(stream_max_message=64 * 1024, **QUIET)
    source, _ = await stream_client(relay)
    await register(source, "r")
    viewer, _ = await stream_client(relay)
    await join(viewer, "r")
    await recv_json(viewer)
    await source.send(json_frame(1, fake_jpeg(60_000)))
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(5):
            while True:
                await source.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert await recv_json(viewer) == {"type": "source-disconnected", "roomId": "r"}
    assert await sync(viewer) == []
    await viewer.close()


async def test_info_can_hide_the_list_of_rooms(start_relay: StartRelay) -> None:
    relay = await start_relay(stream_list_rooms=False, **QUIET)
    source, _ = await stream_client(relay)
    await register(source, "secret-room")
    _, info = await stream_client(relay)
    assert "sources" not in info and info["clients"] == 1
    assert "secret-room" not in json.dumps(info)


async def test_health_reports_stream_clients(relay: RelayServer) -> None:
    source, _ = await stream_client(relay)
    await register(source, "r")
    health = relay.health()
    assert health["connections"]["stream"] == 1
    assert health["streams"]["rooms"] == 1 and health["streams"]["sources"] == 1
    await source.close()
    await wait_for(lambda: relay.health()["connections"]["stream"] == 0)


@pytest.mark.parametrize("path", ["/stream/lab", "/stream?room=x"])
async def test_stream_subpaths_and_queries_reach_the_door(relay: RelayServer, path: str) -> None:
    async with await open_ws(relay, path) as ws:
        assert json.loads(await ws.recv())["type"] == "info"


async def test_a_source_joining_another_room_keeps_feeding_its_own(start_relay: StartRelay) -> None:
    relay = await start_relay(**QUIET)
    source, _ = await stream_client(relay)
    await register(source, "a")
    viewer_a, _ = await stream_client(relay)
    await join(viewer_a, "a")
    await recv_json(viewer_a)
    viewer_b, _ = await stream_client(relay)
    await join(viewer_b, "b")
    await join(source, "b")
    await sync(source)
    await source.send(json_frame(1, b"\xff\xd8\xff"))
    assert seq_of(await viewer_a.recv()) == 1
    assert await sync(viewer_b) == []
    await source.close()
    assert await recv_json(viewer_a) == {"type": "source-disconnected", "roomId": "a"}
    assert await sync(viewer_b) == []
    await viewer_a.close()
    await viewer_b.close()


async def test_invalid_utf8_text_closes_only_its_sender_with_1007(relay: RelayServer) -> None:
    viewer, _ = await stream_client(relay)
    await join(viewer, "r")
    bad = await RawViewer.open(relay)
    bad.send_frame(0x1, b'{"type":"join-room","roomId":"\xff"}')
    async with asyncio.timeout(5):
        while True:
            opcode, payload = await bad.recv()
            if opcode == 0x8:
                break
    assert int.from_bytes(payload[:2], "big") == 1007
    assert await sync(viewer) == []
    await viewer.close()


async def test_source_available_arrives_before_a_frame_sent_in_the_same_turn(
    start_relay: StartRelay,
) -> None:
    relay = await start_relay(**QUIET)
    for attempt in range(20):  # bounded: each attempt uses a fresh room
        room = f"same-turn-{attempt}"
        viewer, _ = await stream_client(relay)
        source, _ = await stream_client(relay)
        await join(viewer, room)
        await sync(viewer)
        # register and frame back to back: the server handles both in one loop turn
        await source.send(json.dumps({"type": "register-source", "roomId": room}))
        await source.send(json_frame(1, fake_jpeg(64)))
        first = await recv_json(viewer)
        assert first == {"type": "source-available", "roomId": room}, first
        await viewer.close()
        await source.close()
