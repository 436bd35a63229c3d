"""Every class of bad input closes only its sender, with a code that says why (issue #2, B3-B8).

A healthy pair of clients in another room keeps syncing throughout each case.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from edrys_relay.protocol import yjs
from edrys_relay.server.app import RelayServer
from tests.conftest import StartRelay, open_ws, recv_until, wait_for
from tests.server.ydata import independent_updates, text_updates

YJS_CASES = [
    ("empty frame", b"", 1002),
    ("sync without type", b"\x00", 1002),
    ("truncated varint", b"\x00\x02\x80", 1002),
    ("overlong varint", b"\x00\x02" + b"\xff" * 12, 1002),
    ("length beyond frame", b"\x00\x02\x7f\x01\x02", 1002),
    ("unknown sync type", b"\x00\x09\x00", 1002),
    ("random bytes as update", yjs.encode_sync_update(os.urandom(64)), 1007),
    ("garbage update", yjs.encode_sync_update(b"\x01\x02\x03garbage"), 1007),
    ("awareness with bad JSON", yjs.encode_awareness(b"\x01\x01\x01\x01{"), 1007),
    ("text frame", "hello", 1003),
]

SIGNALING_CASES = [
    ("not JSON", "{nope", 1007),
    ("JSON array", "[1,2,3]", 1007),
    ("missing type", '{"topics":["a"]}', 1007),
    ("non-string type", '{"type":1}', 1007),
    ("topics not a list", '{"type":"subscribe","topics":"a"}', 1007),
    ("publish without topic", '{"type":"publish","data":1}', 1007),
    ("deep nesting", "[" * 20_000 + "]" * 20_000, 1007),
    ("binary frame", b"\x00\x01", 1003),
]


class HealthyPair:
    """Two clients in room ``healthy`` exchanging updates while a case runs."""

    def __init__(self, server: RelayServer) -> None:
        self.server = server

    async def __aenter__(self) -> HealthyPair:
        self.a = await open_ws(self.server, "/healthy")
        self.b = await open_ws(self.server, "/healthy")
        await self.a.recv()
        await self.b.recv()
        self.updates = iter(text_updates(*[f"{i} " for i in range(200)]))
        return self

    async def exchange(self) -> None:
        frame = yjs.encode_sync_update(next(self.updates))
        await self.a.send(frame)
        assert await recv_until(self.b, lambda m: m == frame) == frame

    async def __aexit__(self, *exc_info: object) -> None:
        await self.a.close()
        await self.b.close()


async def _closed_with(ws, code: int) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConnectionClosed) as info:
        async with asyncio.timeout(5):
            while True:
                await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == code


@pytest.mark.parametrize(("case", "frame", "code"), YJS_CASES, ids=[c[0] for c in YJS_CASES])
async def test_yjs_door_bad_input(
    relay: RelayServer, case: str, frame: bytes | str, code: int
) -> None:
    async with HealthyPair(relay) as healthy:
        await healthy.exchange()
        async with await open_ws(relay, "/victim") as bad:
            await bad.recv()
            await bad.send(frame)
            await _closed_with(bad, code)
        await healthy.exchange()
    room = relay.rooms.rooms.get("victim")
    assert room is None or room.update_count == 0


@pytest.mark.parametrize(
    ("case", "frame", "code"), SIGNALING_CASES, ids=[c[0] for c in SIGNALING_CASES]
)
async def test_signaling_door_bad_input(
    relay: RelayServer, case: str, frame: bytes | str, code: int
) -> None:
    async with HealthyPair(relay) as healthy, await open_ws(relay, "/") as neighbour:
        await neighbour.send('{"type":"subscribe","topics":["t"]}')
        async with await open_ws(relay, "/signaling") as bad:
            await bad.send('{"type":"subscribe","topics":["t"]}')
            await bad.send(frame)
            await _closed_with(bad, code)
        await healthy.exchange()
        await neighbour.send('{"type":"publish","topic":"t","data":"still here"}')
        reply = json.loads(await neighbour.recv())
        assert reply["data"] == "still here" and reply["clients"] == 1


async def test_oversized_frames_close_with_1009(start_relay: StartRelay) -> None:
    relay = await start_relay(max_message_yjs=1024, max_message_signaling=512)
    async with HealthyPair(relay) as healthy:
        async with await open_ws(relay, "/big", max_size=None) as bad:
            await bad.recv()
            await bad.send(yjs.encode_sync_update(b"\x00" * 2000))
            await _closed_with(bad, 1009)
        async with await open_ws(relay, "/", max_size=None) as bad:
            await bad.send(json.dumps({"type": "publish", "topic": "t", "data": "x" * 1000}))
            await _closed_with(bad, 1009)
        await healthy.exchange()


@pytest.mark.parametrize("path", ["/" + "x" * 300, "/bad%00name/../x\x7f"])
async def test_bad_room_names_are_refused_before_upgrade(relay: RelayServer, path: str) -> None:
    with pytest.raises((InvalidStatus, ValueError)):
        await open_ws(relay, path)
    assert relay.rooms.rooms == {}


async def stalled_client(server: RelayServer, path: str) -> asyncio.StreamWriter:
    """Complete a WebSocket handshake, then never read again."""
    sock = socket.socket()
    # A small receive buffer stops the kernel from soaking up megabytes for the stalled client.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    assert b"101" in await reader.readuntil(b"\r\n\r\n")
    return writer


@pytest.mark.parametrize(
    "limit",
    [{"send_buffer_max": 2 * 1024 * 1024}, {"slow_consumer_seconds": 0.2}],
    ids=["too much waiting", "behind for too long"],
)
async def test_slow_receiver_is_dropped_others_keep_up(
    start_relay: StartRelay, limit: dict[str, float]
) -> None:
    relay = await start_relay(send_buffer_high=256 * 1024, **limit)
    async with HealthyPair(relay) as healthy:
        stalled = await stalled_client(relay, "/healthy")
        room = relay.rooms.rooms["healthy"]
        assert len(room.peers) == 3
        updates = independent_updates(300, 100_000)
        sent = 0
        for update in updates:  # bounded: at most 300 updates of 100 kB
            frame = yjs.encode_sync_update(update)
            await healthy.a.send(frame)
            await recv_until(healthy.b, lambda m, f=frame: m == f)
            await asyncio.sleep(0.005)
            sent += 1
            if len(room.peers) == 2:
                break
        assert len(room.peers) == 2, "the stalled receiver was never dropped"
        assert sent < len(updates)
        stalled.close()


async def test_connection_that_misses_a_pong_is_closed(start_relay: StartRelay) -> None:
    relay = await start_relay(ping_interval=0.2, close_timeout=0.2)
    async with HealthyPair(relay) as healthy:  # real clients answer pings and stay
        silent = await stalled_client(relay, "/healthy")
        room = relay.rooms.rooms["healthy"]
        await wait_for(lambda: len(room.peers) == 3)
        await wait_for(lambda: len(room.peers) == 2, timeout=5)
        await healthy.exchange()
        silent.close()
