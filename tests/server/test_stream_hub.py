"""StreamHub with in-memory connections: latest-frame-wins, encode once, keep-alive, rate."""

from __future__ import annotations

import asyncio
import base64
import json

from edrys_relay.config import Settings
from edrys_relay.protocol.stream import RelayFrame
from edrys_relay.server.streams import StreamClient, StreamHub
from tests.conftest import wait_for


class FakePeer:
    def __init__(self, name: str) -> None:
        self.id = name
        self.sent: list[str] = []

    def send(self, data: bytes | str) -> None:
        assert isinstance(data, str)
        self.sent.append(data)

    def close(self, code: int, reason: str) -> None:
        raise AssertionError("the stream hub never closes with a code")


class FakeChannel:
    """Writable until told otherwise; ``drain`` is an event the test sets."""

    def __init__(self) -> None:
        self.ready = True
        self.drain = asyncio.Event()
        self.written: list[tuple[bytes, bool]] = []
        self.pongs: list[asyncio.Future[float]] = []
        self.aborted = False
        self.is_open = True

    def writable(self) -> bool:
        return self.ready

    def write(self, payload: bytes, *, text: bool) -> None:
        self.written.append((payload, text))

    async def drained(self) -> None:
        await self.drain.wait()

    async def ping(self) -> asyncio.Future[float] | None:
        self.pongs.append(asyncio.get_running_loop().create_future())
        return self.pongs[-1]

    def abort(self) -> None:
        self.aborted = True

    def buffered(self) -> int:
        return 0


def frame(seq: int) -> RelayFrame:
    data = "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8\xff" + bytes([seq])).decode()
    text = json.dumps({"type": "frame", "seq": seq, "data": data})
    return RelayFrame(json_text=text.encode())


def connect(hub: StreamHub, name: str, *, binary: bool = False) -> StreamClient:
    return hub.connect(FakePeer(name), FakeChannel(), binary=binary)  # type: ignore[arg-type]


def channel(client: StreamClient) -> FakeChannel:
    assert isinstance(client.channel, FakeChannel)
    return client.channel


async def test_ready_viewer_gets_every_frame_at_once() -> None:
    hub = StreamHub(Settings())
    viewer = connect(hub, "v")
    for seq in range(5):
        assert viewer.offer(frame(seq)) is False
    assert [json.loads(p)["seq"] for p, _ in channel(viewer).written] == list(range(5))
    assert viewer.frames_sent == 5 and viewer.frames_dropped == 0
    hub.disconnect(viewer)


async def test_behind_viewer_keeps_only_the_newest_frame() -> None:
    hub = StreamHub(Settings())
    viewer = connect(hub, "v")
    writer = asyncio.create_task(viewer.run_writer())
    channel(viewer).ready = False
    results = [viewer.offer(frame(seq)) for seq in range(10)]
    assert results == [False] + [True] * 9
    assert viewer.frames_dropped == 9 and viewer.pending_bytes == frame(9).size
    await asyncio.sleep(0)
    assert channel(viewer).written == []  # still waiting for the buffer to drain
    channel(viewer).drain.set()
    await wait_for(lambda: len(channel(viewer).written) == 1)
    assert json.loads(channel(viewer).written[0][0])["seq"] == 9
    assert viewer.pending_bytes == 0
    writer.cancel()
    hub.disconnect(viewer)


async def test_each_frame_is_converted_once_for_all_binary_viewers() -> None:
    hub = StreamHub(Settings())
    viewers = [connect(hub, f"b{i}", binary=True) for i in range(3)]
    one = frame(1)
    for viewer in viewers:
        viewer.offer(one)
    payloads = [channel(v).written[0] for v in viewers]
    assert all(text is False for _, text in payloads)
    assert payloads[0][0] is payloads[1][0] is payloads[2][0]
    for viewer in viewers:
        hub.disconnect(viewer)


async def test_keepalive_drops_clients_that_missed_the_last_pong() -> None:
    hub = StreamHub(Settings(), wall_ms=lambda: 1000)
    answers, silent = connect(hub, "a"), connect(hub, "s")
    writers = [asyncio.create_task(c.run_writer()) for c in (answers, silent)]
    for client in (answers, silent):
        channel(client).drain.set()
    hub.tick()
    await wait_for(lambda: all(channel(c).pongs for c in (answers, silent)))
    assert answers.peer.sent[-1] == (  # type: ignore[attr-defined]
        '{"type":"ping","timestamp":1000,"stats":{"clients":2,"fps":0,"dropped":0}}'
    )
    channel(answers).pongs[-1].set_result(0.001)
    hub.tick()
    assert channel(silent).aborted and not channel(answers).aborted
    for writer in writers:
        writer.cancel()
    hub.disconnect(answers)
    hub.disconnect(silent)


async def test_a_viewer_that_never_drains_cannot_even_be_pinged_and_is_dropped() -> None:
    hub = StreamHub(Settings())
    stuck = connect(hub, "x")
    writer = asyncio.create_task(stuck.run_writer())
    hub.tick()
    await asyncio.sleep(0)
    assert channel(stuck).pongs == []
    hub.tick()
    assert channel(stuck).aborted
    writer.cancel()
    hub.disconnect(stuck)


async def test_source_frames_over_the_rate_are_dropped_bursts_of_one_second_allowed() -> None:
    now = [0.0]
    hub = StreamHub(Settings(stream_max_source_fps=10.0), clock=lambda: now[0])
    source = connect(hub, "s")
    hub.receive(source, '{"type":"register-source","roomId":"r"}')

    def send_burst(count: int) -> int:
        before = hub.stats.frames_in
        for seq in range(count):
            hub.receive(source, frame(seq % 250).as_json().decode())
        return hub.stats.frames_in - before

    assert send_burst(50) == 10
    now[0] += 0.5
    assert send_burst(50) == 5
    now[0] += 100.0
    assert send_burst(50) == 10  # the burst is one second's worth, however long the pause
    assert hub.stats.frames_rate_limited == 125
    hub.disconnect(source)


async def test_big_messages_from_non_sources_are_not_parsed() -> None:
    hub = StreamHub(Settings())
    viewer = connect(hub, "v")
    padded = '{"type":"join-room","roomId":"r"' + " " * 70_000 + "}"
    hub.receive(viewer, padded)
    assert viewer.room is None and hub.stats.messages_ignored == 1
    hub.receive(viewer, '{"type":"join-room","roomId":"r"}')
    assert viewer.room is not None and viewer.room.room_id == "r"
    hub.disconnect(viewer)


async def test_a_replaced_dead_source_cannot_send_frames() -> None:
    hub = StreamHub(Settings())
    viewer, old, new = connect(hub, "v"), connect(hub, "old"), connect(hub, "new")
    hub.receive(viewer, '{"type":"join-room","roomId":"r"}')
    hub.receive(old, '{"type":"register-source","roomId":"r"}')
    channel(old).is_open = False  # closing, its last messages still being read
    hub.receive(new, '{"type":"register-source","roomId":"r"}')
    assert new.peer.sent[-1] == '{"type":"source-registered","roomId":"r"}'  # type: ignore[attr-defined]
    hub.receive(old, frame(1).as_json().decode())
    assert channel(viewer).written == []
    hub.receive(new, frame(2).as_json().decode())
    assert [json.loads(p)["seq"] for p, _ in channel(viewer).written] == [2]
    for client in (viewer, old, new):
        hub.disconnect(client)
    assert hub.rooms == {} and hub.clients == {}
