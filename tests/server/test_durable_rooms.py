"""The durability contract at the hub level, with fake peers and a store we can hold back."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pycrdt
import pytest

from edrys_relay.config import Settings
from edrys_relay.protocol import yjs
from edrys_relay.protocol.awareness import AwarenessEntry, encode_awareness_update
from edrys_relay.protocol.errors import ProtocolError
from edrys_relay.protocol.routing import RoomName
from edrys_relay.server.bus import LocalBus
from edrys_relay.server.rooms import STORAGE_BUSY, RoomHub
from edrys_relay.storage.base import Record, StoreError
from edrys_relay.storage.memory import MemoryStore
from edrys_relay.storage.sqlite import SQLiteStore
from edrys_relay.storage.writer import StoreWriter
from tests.conftest import wait_for
from tests.server.ydata import text_of, text_updates
from tests.unit.test_yupdate import HOSTILE

R = RoomName("r")


class FakePeer:
    def __init__(self, name: str) -> None:
        self.id = name
        self.sent: list[bytes] = []
        self.closed: tuple[int, str] | None = None

    def send(self, data: bytes | str) -> None:
        assert isinstance(data, bytes)
        self.sent.append(data)

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def updates(self) -> list[bytes]:
        out = []
        for frame in self.sent:
            message = yjs.decode_message(frame)
            if isinstance(message, yjs.SyncUpdate | yjs.SyncStep2):
                out.append(message.update)
        return out


class GatedStore(MemoryStore):
    """A memory store whose commits wait for ``gate`` and can be made to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.failures = 0
        self.batches: list[int] = []
        self.committing = threading.Event()
        """Set once a commit has started (and may be waiting for the gate)."""

    def append(self, updates: Sequence[tuple[RoomName, bytes]]) -> list[int]:
        self.committing.set()
        assert self.gate.wait(timeout=10)
        if self.failures:
            self.failures -= 1
            raise StoreError("disk full (simulated)")
        self.batches.append(len(updates))
        return super().append(updates)


@pytest.fixture
def store() -> GatedStore:
    return GatedStore()


@pytest.fixture
async def hub(store: GatedStore) -> AsyncIterator[RoomHub]:
    settings = Settings(store="memory", compact_updates=10_000)
    async with StoreWriter(lambda: store, retry_initial_seconds=0.01) as writer:
        hub = RoomHub(settings, LocalBus(writer))
        yield hub
        await hub.aclose()


def sync_update(update: bytes) -> bytes:
    return yjs.encode_sync_update(update)


async def test_update_is_relayed_only_after_its_commit(hub: RoomHub, store: GatedStore) -> None:
    a, b = FakePeer("a"), FakePeer("b")
    room = await hub.join(R, a)
    await hub.join(R, b)
    store.gate.clear()
    update = text_updates("durable")[0]
    room.receive(a, sync_update(update))
    await asyncio.sleep(0.05)  # give a wrong implementation the chance to relay early
    assert b.updates() == []
    store.gate.set()
    await hub.flush()
    assert b.updates() == [update]
    assert a.updates() == []  # never echoed to the sender


async def test_one_transaction_for_updates_of_one_loop_turn(
    hub: RoomHub, store: GatedStore
) -> None:
    a, b = FakePeer("a"), FakePeer("b")
    room = await hub.join(R, a)
    await hub.join(R, b)
    updates = text_updates(*[f"{i};" for i in range(50)])
    for update in updates:
        room.receive(a, sync_update(update))
    await hub.flush()
    assert store.batches == [50]
    assert b.updates() == updates


async def test_turns_that_wait_for_a_commit_share_the_next_one(
    hub: RoomHub, store: GatedStore
) -> None:
    """Group commit across turns: one fsync for everything that came in during the last."""
    a, b = FakePeer("a"), FakePeer("b")
    room = await hub.join(R, a)
    await hub.join(R, b)
    updates = text_updates("first", " second", " third", " fourth")
    store.gate.clear()
    room.receive(a, sync_update(updates[0]))
    await wait_for(store.committing.is_set)  # the first commit is in flight
    for update in updates[1:]:
        room.receive(a, sync_update(update))
        await asyncio.sleep(0)  # one loop turn each: three hand-overs to the writer thread
    assert b.updates() == []
    store.gate.set()
    await hub.flush()
    assert store.batches == [1, 3]
    assert b.updates() == updates


async def test_after_commit_runs_once_per_commit_after_its_callbacks() -> None:
    """The server's Outbox flush: what the callbacks relayed leaves in the same loop turn."""
    seen: list[str] = []
    store = MemoryStore()
    async with StoreWriter(lambda: store, after_commit=lambda: seen.append("after")) as writer:
        writer.append(R, b"one", lambda seq: seen.append(f"done {seq}"))
        writer.append(R, b"two", lambda seq: seen.append(f"done {seq}"))
        await writer.flush()
        assert seen == ["done 1", "done 2", "after"]


async def test_failed_commits_are_retried_in_order(hub: RoomHub, store: GatedStore) -> None:
    a, b = FakePeer("a"), FakePeer("b")
    room = await hub.join(R, a)
    await hub.join(R, b)
    store.failures = 3
    updates = text_updates("x", "y", "z")
    for update in updates:
        room.receive(a, sync_update(update))
        await asyncio.sleep(0)
    await asyncio.wait_for(hub.flush(), timeout=10)
    assert b.updates() == updates
    assert [r.update for r in store.load(R)] == updates


async def test_step1_answer_waits_for_the_senders_earlier_updates(
    hub: RoomHub, store: GatedStore
) -> None:
    a = FakePeer("a")
    room = await hub.join(R, a)
    store.gate.clear()
    update = text_updates("first")[0]
    room.receive(a, sync_update(update))
    room.receive(a, yjs.encode_sync_step1(b"\x00"))
    await asyncio.sleep(0.05)
    assert len(a.sent) == 1  # only the greeting so far
    store.gate.set()
    await hub.flush()
    assert text_of(a.updates()) == "first"
    assert isinstance(yjs.decode_message(a.sent[-1]), yjs.SyncStep2)


async def test_backlog_over_the_limit_closes_the_sender_with_1013(store: GatedStore) -> None:
    settings = Settings(store="memory", store_backlog_max=100)
    async with StoreWriter(lambda: store) as writer:
        hub = RoomHub(settings, LocalBus(writer))
        a = FakePeer("a")
        room = await hub.join(R, a)
        store.gate.clear()
        for update in text_updates("x" * 80, "y" * 80, "z" * 80):
            room.receive(a, sync_update(update))
        assert a.closed == (STORAGE_BUSY, "storage busy")
        assert room.stats.updates_applied == 2
        store.gate.set()
        await hub.aclose()


async def test_poison_record_is_quarantined_and_the_room_loads(tmp_path: Path) -> None:
    good = text_updates("still ", "here")
    store = SQLiteStore(tmp_path)
    store.append([(R, good[0]), (R, b"\x01\x02\x03poison"), (R, good[1])])
    store.append([(RoomName("other"), good[0])])
    async with StoreWriter(lambda: store) as writer:
        hub = RoomHub(Settings(), LocalBus(writer))
        peer = FakePeer("p")
        room = await hub.join(R, peer)
        room.receive(peer, yjs.encode_sync_step1(b"\x00"))
        assert text_of(peer.updates()) == "still here"
        await hub.aclose()
    reopened = SQLiteStore(tmp_path)
    assert [r.update for r in reopened.quarantined(R)] == [b"\x01\x02\x03poison"]
    assert [r.update for r in reopened.load(R)] == good
    assert [r.update for r in reopened.load(RoomName("other"))] == [good[0]]
    reopened.close()


async def test_compaction_keeps_every_update_and_serves_a_diff(store: GatedStore) -> None:
    settings = Settings(store="memory", compact_updates=7)
    async with StoreWriter(lambda: store) as writer:
        hub = RoomHub(settings, LocalBus(writer))
        a = FakePeer("a")
        room = await hub.join(R, a)
        chunks = [f"{i};" for i in range(40)]
        updates = text_updates(*chunks)
        for update in updates:
            room.receive(a, sync_update(update))
            await asyncio.sleep(0)  # several commits, so merges overlap new updates
        await hub.flush()
        await hub.compact(room)
        assert room.update_count == 1
        records = store.load(R)
        assert len(records) == 1 and records[0].merged
        # A fresh client gets everything; a client that has a prefix gets only the rest.
        fresh, behind = FakePeer("fresh"), FakePeer("behind")
        await hub.join(R, fresh)
        await hub.join(R, behind)
        room.receive(fresh, yjs.encode_sync_step1(b"\x00"))
        assert text_of(fresh.updates()) == "".join(chunks)
        prefix = pycrdt.Doc()
        prefix.get("t", type=pycrdt.Text)
        for update in updates[:10]:
            prefix.apply_update(update)
        room.receive(behind, yjs.encode_sync_step1(bytes(prefix.get_state())))
        served = sum(len(u) for u in behind.updates())
        assert served < sum(len(u) for u in fresh.updates())
        for update in behind.updates():
            prefix.apply_update(update)
        assert str(prefix.get("t", type=pycrdt.Text)) == "".join(chunks)
        await hub.aclose()


async def test_idle_room_is_compacted_then_unloaded(store: GatedStore) -> None:
    settings = Settings(store="memory", room_idle_seconds=0)
    async with StoreWriter(lambda: store) as writer:
        hub = RoomHub(settings, LocalBus(writer))
        a = FakePeer("a")
        room = await hub.join(R, a)
        for update in text_updates("a", "b", "c"):
            room.receive(a, sync_update(update))
        await hub.flush()
        hub.leave(room, a)
        hub.sweep()
        await wait_for(lambda: R not in hub.rooms)
        assert [r.merged for r in store.load(R)] == [True]
        again = FakePeer("again")
        room = await hub.join(R, again)
        room.receive(again, yjs.encode_sync_step1(b"\x00"))
        assert text_of(again.updates()) == "abc"
        await hub.aclose()


async def test_known_bad_inputs_in_storage_are_quarantined_quickly(tmp_path: Path) -> None:
    """The codec's hostile corpus (docs/threats.md B3-B5, y-crdt#415 class) written straight into
    a room's stored history: the room loads from its good records, in bounded time."""
    good = text_updates("good ", "records")
    store = SQLiteStore(tmp_path)
    store.append([(R, good[0]), *((R, bad) for bad in HOSTILE.values()), (R, good[1])])
    async with StoreWriter(lambda: store) as writer:
        hub = RoomHub(Settings(compact_updates=2), LocalBus(writer))
        peer = FakePeer("p")
        start = time.process_time()
        room = await hub.join(R, peer)
        assert time.process_time() - start < 10
        room.receive(peer, yjs.encode_sync_step1(b"\x00"))
        assert text_of(peer.updates()) == "good records"
        await hub.compact(room)
        assert not room.compaction_failed and room.update_count == 1
        await hub.aclose()
    reopened = SQLiteStore(tmp_path)
    assert len(reopened.quarantined(R)) == len(HOSTILE)
    assert [r.merged for r in reopened.load(R)] == [True]
    reopened.close()


async def test_close_commits_what_is_pending(store: GatedStore) -> None:
    async with StoreWriter(lambda: store) as writer:
        hub = RoomHub(Settings(store="memory"), LocalBus(writer))
        a = FakePeer("a")
        room = await hub.join(R, a)
        store.gate.clear()
        room.receive(a, sync_update(text_updates("late")[0]))
        closing = asyncio.create_task(hub.aclose())
        await asyncio.sleep(0.05)
        assert not closing.done()  # waits for the commit, does not drop it
        store.gate.set()
        await asyncio.wait_for(closing, timeout=10)
    assert len(store.load(R)) == 1


async def test_first_joins_share_one_load_that_merges_a_long_history() -> None:
    class CountingStore(MemoryStore):
        loads = 0

        def load(self, room: RoomName) -> list[Record]:
            self.loads += 1
            return super().load(room)

    store = CountingStore()
    updates = text_updates(*[f"{i};" for i in range(30)])
    store.append([(R, update) for update in updates])
    async with StoreWriter(lambda: store) as writer:
        hub = RoomHub(Settings(store="memory", compact_updates=10), LocalBus(writer))
        a, b = FakePeer("a"), FakePeer("b")
        room_a, room_b = await asyncio.gather(hub.join(R, a), hub.join(R, b))
        assert room_a is room_b and store.loads == 1
        assert room_a.update_count == 1  # merged before anyone was served
        room_a.receive(a, yjs.encode_sync_step1(b"\x00"))
        assert len(a.updates()) == 2  # the merged record and the empty step 2
        assert text_of(a.updates()) == "".join(f"{i};" for i in range(30))
        await hub.aclose()
    assert [record.merged for record in store.load(R)] == [True]


@pytest.mark.parametrize("state_vector", [b"", b"\x80", b"\x05\x01", b"\xff" * 12])
async def test_malformed_state_vector_is_refused_before_queueing(
    hub: RoomHub, state_vector: bytes
) -> None:
    a = FakePeer("a")
    room = await hub.join(R, a)
    with pytest.raises(ProtocolError):
        room.receive(a, yjs.encode_sync_step1(state_vector))
    assert len(a.sent) == 1  # only the greeting: nothing was answered or queued


async def test_awareness_does_not_overtake_an_update_waiting_for_its_commit(
    hub: RoomHub, store: GatedStore
) -> None:
    """Edrys reads a member's display name (an update) when its awareness state arrives."""
    a, b = FakePeer("a"), FakePeer("b")
    room = await hub.join(R, a)
    await hub.join(R, b)
    store.gate.clear()
    room.receive(a, sync_update(text_updates("name")[0]))
    awareness = encode_awareness_update([AwarenessEntry(7, 1, '{"user":{}}')])
    room.receive(a, yjs.encode_awareness(awareness))
    await asyncio.sleep(0.05)
    assert len(b.sent) == 1  # the greeting only: the awareness waits behind the update
    store.gate.set()
    await hub.flush()
    kinds = [type(yjs.decode_message(frame)).__name__ for frame in b.sent[1:]]
    assert kinds == ["SyncUpdate", "AwarenessMessage"]
