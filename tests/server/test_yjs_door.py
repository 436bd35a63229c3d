"""The y-websocket door (protocols.md §2.3-2.6) with an in-process server."""

from __future__ import annotations

import asyncio

from edrys_relay.protocol import yjs
from edrys_relay.protocol.awareness import (
    AwarenessEntry,
    decode_awareness_update,
    encode_awareness_update,
)
from edrys_relay.server.app import RelayServer
from tests.conftest import StartRelay, open_ws, recv_until, wait_for
from tests.server.ydata import text_of, text_updates

STEP1_EMPTY = bytes.fromhex("00000100")


def is_update(message: object) -> bool:
    return isinstance(message, bytes) and isinstance(yjs.decode_message(message), yjs.SyncUpdate)


def is_step2(message: object) -> bool:
    return isinstance(message, bytes) and isinstance(yjs.decode_message(message), yjs.SyncStep2)


def is_awareness(message: object) -> bool:
    return isinstance(message, bytes) and message[:1] == b"\x01"


def awareness_of(message: bytes) -> list[AwarenessEntry]:
    decoded = yjs.decode_message(message)
    assert isinstance(decoded, yjs.AwarenessMessage)
    return decode_awareness_update(decoded.update)


async def test_open_sends_step1_and_step1_is_answered(relay: RelayServer) -> None:
    async with await open_ws(relay, "/room?userid=alice") as ws:
        assert await ws.recv() == STEP1_EMPTY
        await ws.send(STEP1_EMPTY)
        assert await ws.recv() == yjs.encode_sync_step2(yjs.EMPTY_UPDATE)


async def test_updates_are_relayed_byte_for_byte_to_others(relay: RelayServer) -> None:
    update = text_updates("hello")[0]
    frame = yjs.encode_sync_update(update)
    async with await open_ws(relay, "/r") as a, await open_ws(relay, "/r") as b:
        await a.recv()
        await b.recv()
        await a.send(frame)
        assert await recv_until(b, is_update) == frame
        # no echo to the sender: the answer to a later query-awareness is its next message
        await a.send(yjs.encode_query_awareness())
        assert is_awareness(await a.recv())


async def test_late_joiner_receives_original_updates_then_step2(relay: RelayServer) -> None:
    updates = text_updates("one ", "two ", "three")
    async with await open_ws(relay, "/late") as writer:
        await writer.recv()
        for update in updates:
            await writer.send(yjs.encode_sync_step2(update))
        await wait_for(lambda: relay.rooms.rooms["late"].update_count == 3)
    async with await open_ws(relay, "/late") as joiner:
        step1 = yjs.decode_message(await joiner.recv())
        assert isinstance(step1, yjs.SyncStep1) and step1.state_vector != b"\x00"
        await joiner.send(STEP1_EMPTY)
        received = []
        while not is_step2(message := await joiner.recv()):
            decoded = yjs.decode_message(message)
            assert isinstance(decoded, yjs.SyncUpdate)
            received.append(decoded.update)
        assert received == updates
        assert text_of(received) == "one two three"


async def test_duplicate_update_is_not_relayed_again(relay: RelayServer) -> None:
    update = yjs.encode_sync_update(text_updates("x")[0])
    async with await open_ws(relay, "/dup") as a, await open_ws(relay, "/dup") as b:
        await a.recv()
        await b.recv()
        await a.send(update)
        await recv_until(b, is_update)
        await a.send(update)
        await a.send(STEP1_EMPTY)  # a marker: its answer comes after the duplicate was handled
        await recv_until(a, is_step2)
        assert relay.rooms.rooms["dup"].update_count == 1
        assert relay.rooms.rooms["dup"].stats.updates_ignored == 1


async def test_update_with_missing_dependency_is_kept_and_relayed(relay: RelayServer) -> None:
    first, second = text_updates("ab", "cd")
    async with await open_ws(relay, "/pending") as a, await open_ws(relay, "/pending") as b:
        await a.recv()
        await b.recv()
        await a.send(yjs.encode_sync_update(second))  # depends on `first`, not yet known
        assert yjs.decode_message(await recv_until(b, is_update)) == yjs.SyncUpdate(second)
        await a.send(yjs.encode_sync_update(first))
        assert yjs.decode_message(await recv_until(b, is_update)) == yjs.SyncUpdate(first)
    assert relay.rooms.rooms["pending"].update_count == 2


async def test_awareness_echo_and_removal_on_close(relay: RelayServer) -> None:
    state = '{"user":{"name":"Ada","z":1,"a":2}}'
    async with await open_ws(relay, "/aw") as a, await open_ws(relay, "/aw") as b:
        await a.recv()
        await b.recv()
        await a.send(yjs.encode_awareness(encode_awareness_update([AwarenessEntry(42, 3, state)])))
        # echoed to everyone, the sender included, with the JSON text unchanged
        for ws in (a, b):
            assert awareness_of(await recv_until(ws, is_awareness)) == [
                AwarenessEntry(42, 3, state)
            ]
        async with await open_ws(relay, "/aw") as c:
            assert await c.recv() == STEP1_EMPTY
            assert awareness_of(await c.recv()) == [AwarenessEntry(42, 3, state)]
        await a.close()
        assert awareness_of(await recv_until(b, is_awareness)) == [AwarenessEntry(42, 3, "null")]


async def test_stale_awareness_is_dropped(relay: RelayServer) -> None:
    async with await open_ws(relay, "/stale") as a:
        await a.recv()
        await a.send(yjs.encode_awareness(encode_awareness_update([AwarenessEntry(1, 5, "{}")])))
        await recv_until(a, is_awareness)
        await a.send(yjs.encode_awareness(encode_awareness_update([AwarenessEntry(1, 4, "{}")])))
        await a.send(STEP1_EMPTY)
        assert is_step2(await a.recv())


async def test_awareness_expires_without_renewal(start_relay: StartRelay) -> None:
    relay = await start_relay(awareness_timeout=0.3, sweep_interval=0.05)
    async with await open_ws(relay, "/exp") as a, await open_ws(relay, "/exp") as b:
        await a.recv()
        await b.recv()
        await a.send(yjs.encode_awareness(encode_awareness_update([AwarenessEntry(9, 1, "{}")])))
        await recv_until(b, is_awareness)
        removal = await recv_until(b, is_awareness, timeout=3)
        assert awareness_of(removal) == [AwarenessEntry(9, 1, "null")]


async def test_unknown_message_types_are_ignored_not_forwarded(relay: RelayServer) -> None:
    async with await open_ws(relay, "/unk") as a, await open_ws(relay, "/unk") as b:
        await a.recv()
        await b.recv()
        await a.send(b"\x07\x01\x02")
        await a.send(b"\x2a\x05hello")
        await a.send(yjs.encode_sync_update(text_updates("z")[0]))
        # b's next message is the update: the unknown frames were not forwarded
        assert is_update(await b.recv())
        assert relay.rooms.rooms["unk"].stats.messages_ignored == 2


async def test_rooms_are_isolated(relay: RelayServer) -> None:
    async with await open_ws(relay, "/one") as a, await open_ws(relay, "/two") as b:
        await a.recv()
        await b.recv()
        await a.send(yjs.encode_sync_update(text_updates("only in one")[0]))
        await b.send(STEP1_EMPTY)
        assert is_step2(await b.recv())


async def test_empty_room_unloads_after_grace_period(start_relay: StartRelay) -> None:
    relay = await start_relay(room_idle_seconds=0.2, sweep_interval=0.05)
    async with await open_ws(relay, "/brief") as a:
        await a.recv()
        await a.send(yjs.encode_sync_update(text_updates("x")[0]))
        await asyncio.sleep(0.4)
        assert "brief" in relay.rooms.rooms  # not unloaded while someone is connected
    await wait_for(lambda: "brief" not in relay.rooms.rooms, timeout=3)


async def test_stream_prefixed_room_names_are_yjs_rooms(relay: RelayServer) -> None:
    for name in ("streaming", "stream-lab"):
        async with await open_ws(relay, f"/{name}") as ws:
            assert await ws.recv() == STEP1_EMPTY
    assert {"streaming", "stream-lab"} <= set(relay.rooms.rooms)
