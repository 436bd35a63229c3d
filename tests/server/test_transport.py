"""The send path: frames built once, flushed once per loop turn, order kept, close after data."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from edrys_relay.server.app import RelayServer
from edrys_relay.server.stream_door import FrameCache
from edrys_relay.server.transport import frame_message
from tests.conftest import open_ws, recv_until, wait_for
from tests.server.ydata import independent_updates


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_frame_matches_websockets_serialisation(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    expected = Frame(Opcode.BINARY, payload).serialize(mask=False, extensions=[])
    assert frame_message(payload) == expected
    text = "é" * (size // 2)
    assert frame_message(text) == Frame(Opcode.TEXT, text.encode()).serialize(
        mask=False, extensions=[]
    )


def test_stream_frames_are_framed_once_per_payload() -> None:
    cache = FrameCache()
    jpeg = b"data:image/jpeg;base64," + b"A" * 70000
    first = cache.frame(jpeg, text=True)
    assert first == Frame(Opcode.TEXT, jpeg).serialize(mask=False, extensions=[])
    assert cache.frame(jpeg, text=True) is first  # every viewer gets the same bytes object
    binary = cache.frame(jpeg, text=False)
    assert binary == Frame(Opcode.BINARY, jpeg).serialize(mask=False, extensions=[])
    newer = jpeg[:-1] + b"B"
    assert cache.frame(newer, text=False) is not binary  # a new payload is framed anew


async def test_many_messages_in_one_turn_arrive_in_order(relay: RelayServer) -> None:
    async with await open_ws(relay, "/") as receiver:
        await receiver.send('{"type":"subscribe","topics":["t"]}')
        await receiver.send('{"type":"ping"}')
        await recv_until(receiver, lambda m: m == '{"type":"pong"}')
        peer = next(iter(relay.topics.subscriptions))
        for i in range(300):  # one loop turn: queued, then one write
            peer.send(f'{{"n":{i}}}')
        got = [await receiver.recv() for _ in range(300)]
        assert got == [f'{{"n":{i}}}' for i in range(300)]


async def test_close_flushes_queued_messages_first(relay: RelayServer) -> None:
    updates = independent_updates(3, 10)
    async with await open_ws(relay, "/flush") as client:
        await client.recv()
        await wait_for(lambda: relay.rooms.connection_count == 1)
        room = relay.rooms.rooms["flush"]
        peer = next(iter(room.peers))
        for update in updates:
            peer.send(update)
        peer.close(4000, "bye")
        got = [await client.recv() for _ in updates]
        assert got == updates
        await client.wait_closed()
        assert client.close_code == 4000
