"""Backpressure on the ``/stream`` door (issue #4 test 2; docs/threats.md V16, L5).

A source sends 30 frames/s of ~100 KiB for 20 s to two viewers. One reads normally; the other
stops reading (a raw socket with a tiny receive buffer), then resumes near the end. The
normal viewer must not suffer, the server must hold a bounded number of bytes whatever the
number of frames sent, and the resumed viewer must get recent frames, not a backlog.
"""

from __future__ import annotations

import asyncio

import psutil

from tests.conftest import StartRelay, wait_for
from tests.server.streamkit import (
    RawViewer,
    fake_jpeg,
    join,
    json_frame,
    recv_json,
    register,
    seq_of,
    stream_client,
)

FPS = 30
SECONDS = 20
FRAMES = FPS * SECONDS
IMAGE_BYTES = 75 * 1024  # base64 makes the JSON frame ~100 KiB
STALL_AFTER = 10  # frames the stalled viewer reads before it stops
RESUME_AT = FRAMES - 3 * FPS  # the stalled viewer reads again for the last 3 s
MiB = 1024 * 1024


async def test_slow_viewer_gets_latest_frames_others_keep_up(start_relay: StartRelay) -> None:
    # The 5 s keep-alive would rightly drop a viewer that reads nothing for 5-10 s
    # (protocols.md §3.3, tested in test_stream_door.py); here only flow control is tested.
    relay = await start_relay(stream_ping_interval=3600.0)
    source, _ = await stream_client(relay)
    await register(source, "lab")
    normal, _ = await stream_client(relay)
    await join(normal, "lab")
    assert (await recv_json(normal))["type"] == "source-available"
    stalled = await RawViewer.open(relay)
    stalled.send_text('{"type":"join-room","roomId":"lab"}')
    assert '"info"' in await stalled.recv_message()
    assert '"source-available"' in await stalled.recv_message()

    image = fake_jpeg(IMAGE_BYTES)
    sent = -1
    normal_seqs: list[int] = []
    buffered: list[int] = []
    per_viewer: list[int] = []
    rss: list[int] = []
    process = psutil.Process()

    async def read_normal() -> None:
        while len(normal_seqs) < FRAMES:
            normal_seqs.append(seq_of(await normal.recv()))
            if normal_seqs[-1] == FRAMES - 1:
                return

    async def sample() -> None:
        while True:
            buffered.append(relay.streams.buffered_bytes())
            clients = relay.streams.clients
            per_viewer.append(max(c.channel.buffered() + c.pending_bytes for c in clients))
            rss.append(process.memory_info().rss)
            await asyncio.sleep(0.2)

    async def read_stalled(until: int) -> list[tuple[int, int]]:
        """(frame seq, newest seq sent when it arrived) for each frame up to ``until``."""
        got: list[tuple[int, int]] = []
        while not got or got[-1][0] < until:
            got.append((seq_of(await stalled.recv_message()), sent))
        return got

    reader = asyncio.create_task(read_normal())
    sampler = asyncio.create_task(sample())
    first_reads = asyncio.create_task(read_stalled(until=STALL_AFTER - 1))
    stalled_reads: asyncio.Task[list[tuple[int, int]]] | None = None
    loop = asyncio.get_running_loop()
    started = loop.time()
    for seq in range(FRAMES):
        await source.send(json_frame(seq, image))
        sent = seq
        if seq == RESUME_AT:
            stalled_reads = asyncio.create_task(read_stalled(until=FRAMES - 1))
        await asyncio.sleep(max(0.0, started + (seq + 1) / FPS - loop.time()))
    async with asyncio.timeout(10):
        before = await first_reads
        await reader
        assert stalled_reads is not None
        after = await stalled_reads
    sampler.cancel()

    frame_bytes = len(json_frame(0, image))
    room = relay.streams.rooms["lab"]
    viewers = [c for c in room.members if c is not room.source]
    fast, slow = sorted(viewers, key=lambda c: c.frames_dropped)

    # the normal viewer: at least 90 % of the frames, in order
    assert len(normal_seqs) >= 0.9 * FRAMES
    assert normal_seqs == sorted(set(normal_seqs))
    assert fast.frames_dropped <= 0.1 * FRAMES

    # server memory: a few frames, not a share of the ~60 MB sent; per viewer at most the
    # frame in flight and one waiting (docs/threats.md L5: ≤ 2 frames)
    assert max(buffered) <= 4 * frame_bytes
    assert max(per_viewer) <= 2 * frame_bytes + 64 * 1024
    rss_growth = max(rss) - rss[len(rss) // 10]
    assert rss_growth <= 20 * MiB, rss_growth

    # the stalled viewer got frames up to where it stopped, then, on resuming, at most the
    # frames that were in flight, then recent frames only: no backlog
    assert [seq for seq, _ in before] == list(range(STALL_AFTER))
    stale = [seq for seq, _ in after if seq < RESUME_AT]
    fresh = [(seq, newest) for seq, newest in after if seq >= RESUME_AT]
    assert len(stale) <= 3, stale
    assert all(newest - seq <= 3 for seq, newest in fresh[:1]), fresh[:1]
    assert slow.frames_dropped >= RESUME_AT - STALL_AFTER - 10
    assert slow.frames_sent == len(before) + len(after)
    assert room.frames_dropped == slow.frames_dropped + fast.frames_dropped

    stalled.close()
    await source.close()
    await normal.close()
    await wait_for(lambda: relay.streams.connection_count == 0)
