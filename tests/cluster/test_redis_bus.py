"""The Redis bus in this process, behind a real room hub: what crosses nodes and what does not.

Two buses on one redis-server stand for two nodes; fake peers stand for their clients.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from edrys_relay.cluster import keys
from edrys_relay.cluster.bus import RedisBus
from edrys_relay.config import Settings
from edrys_relay.protocol import yjs
from edrys_relay.protocol.awareness import AwarenessEntry, encode_awareness_update
from edrys_relay.protocol.routing import RoomName
from edrys_relay.server.rooms import Room, RoomHub
from tests.cluster.redisproc import RedisProcess
from tests.conftest import wait_for
from tests.server.test_durable_rooms import FakePeer
from tests.server.ydata import text_of, text_updates

R = RoomName("lab")
POISON = b"\x01\x02\x03poison"

Node = tuple[RedisBus, RoomHub]


@pytest.fixture
async def nodes(redis_server: RedisProcess) -> AsyncIterator[Callable[..., Awaitable[Node]]]:
    started: list[Node] = []

    async def start(**settings: Any) -> Node:
        config = Settings(redis_url=redis_server.url, **settings)
        bus = RedisBus(config, redis_server.url)
        await bus.start()
        hub = RoomHub(config, bus)
        started.append((bus, hub))
        return bus, hub

    yield start
    for bus, hub in started:
        await hub.aclose()
        await bus.aclose()


async def test_an_update_crosses_nodes_once_and_awareness_stays_in_order(
    nodes: Callable[..., Awaitable[Node]],
) -> None:
    (_, hub_a), (_, hub_b) = await nodes(), await nodes()
    writer, near, far = FakePeer("writer"), FakePeer("near"), FakePeer("far")
    room_a = await hub_a.join(R, writer)
    await hub_a.join(R, near)
    room_b = await hub_b.join(R, far)
    updates = text_updates("one ", "two")
    for update in updates:
        room_a.receive(writer, yjs.encode_sync_update(update))
    state = encode_awareness_update([AwarenessEntry(7, 1, '{"user":"w"}')])
    room_a.receive(writer, yjs.encode_awareness(state))
    await hub_a.flush()
    await wait_for(lambda: len(far.updates()) == 2)
    assert far.updates() == updates == near.updates()  # the writers' bytes, once each
    assert writer.updates() == []
    await wait_for(lambda: [e.client_id for e in room_b.awareness.snapshot()] == [7])
    # The near peer got the awareness state behind the updates it may refer to.
    kinds = [type(yjs.decode_message(frame)).__name__ for frame in near.sent[1:]]
    assert kinds == ["SyncUpdate", "SyncUpdate", "AwarenessMessage"]


async def test_a_long_history_asks_for_compaction_once_per_snapshot_not_per_commit(
    nodes: Callable[..., Awaitable[Node]], redis_server: RedisProcess
) -> None:
    bus, hub = await nodes(compact_updates=5)
    asked: list[Room] = []
    compact = bus.compact

    async def counting(room: Room) -> None:
        asked.append(room)
        await compact(room)

    bus.compact = counting  # type: ignore[method-assign]
    peer = FakePeer("p")
    room = await hub.join(R, peer)
    chunks = [f"{i};" for i in range(30)]
    for update in text_updates(*chunks):
        room.receive(peer, yjs.encode_sync_update(update))
        await hub.flush()  # one commit at a time, each past the threshold until a snapshot
    await wait_for(lambda: room.history.tail_count < 5 and not hub._compactions)
    # Each request waits for its snapshot, so commits meanwhile ask nothing more.
    assert 1 <= len(asked) <= bus.worker.compactions + 1
    redis = redis_server.client()
    try:
        assert await redis.hget(keys.snapshot_key(R), b"last") is not None
    finally:
        await redis.aclose()
    late = FakePeer("late")
    await hub.join(R, late)
    room.receive(late, yjs.encode_sync_step1(b"\x00"))
    assert text_of(late.updates()) == "".join(chunks)


async def test_a_poison_entry_is_quarantined_and_the_room_still_loads(
    nodes: Callable[..., Awaitable[Node]], redis_server: RedisProcess
) -> None:
    good = text_updates("still ", "here")
    log = keys.log_key(R)
    redis = redis_server.client()
    try:
        for update in (good[0], POISON, good[1]):
            await redis.xadd(log, {b"u": update, b"o": b"gone-node"})
        _, hub = await nodes()
        peer = FakePeer("p")
        room = await hub.join(R, peer)
        room.receive(peer, yjs.encode_sync_step1(b"\x00"))
        assert text_of(peer.updates()) == "still here"
        quarantined = await redis.xrange(keys.quarantine_key(R))
        assert [fields[b"data"] for _, fields in quarantined] == [POISON]
        assert quarantined[0][1][b"reason"] == b"refused on load"
        kept = [fields.get(b"u") for _, fields in await redis.xrange(log)]
        assert POISON not in kept and good[0] in kept and good[1] in kept
    finally:
        await redis.aclose()
    # Another node loading the room later finds only the good entries.
    _, other = await nodes()
    again = FakePeer("again")
    room = await other.join(R, again)
    room.receive(again, yjs.encode_sync_step1(b"\x00"))
    assert text_of(again.updates()) == "still here"
