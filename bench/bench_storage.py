"""Storage benchmark: join time for a long room history, and update throughput per store.

Usage: python bench/bench_storage.py [--updates N] [--writers W] [--per-writer M]

1. Join time: a room whose stored history is N small updates (default 100,000: Edrys-like
   text edits and small JSON map writes), written straight into a SQLite store. A fresh
   client connects, sends sync step 1 and waits for step 2. "first" includes loading the room
   (read, check and replay in threads); "next" is a second client once the room is loaded.
   Three cases: compaction off (the raw log is served), default settings (the long history
   is merged while the room loads) and after an offline ``compact``. Also the longest
   event-loop stall during the first join.
2. Throughput: W writers send M updates each, as fast as the server takes them; one reader
   in the same room counts relayed updates. Updates/s from first send to last relay, for
   ``--store sqlite`` (WAL, synchronous=FULL, group commit) and ``--store memory``.

Wall-clock seconds on this machine; numbers go to docs/storage.md, they are not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pycrdt
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from edrys_relay import admin  # noqa: E402
from edrys_relay.config import Settings  # noqa: E402
from edrys_relay.protocol import yjs  # noqa: E402
from edrys_relay.protocol.routing import RoomName  # noqa: E402
from edrys_relay.server.app import RelayServer  # noqa: E402
from edrys_relay.storage.sqlite import SQLiteStore  # noqa: E402

ROOM = RoomName("big")
NEVER = 10**12


def small_updates(count: int) -> list[bytes]:
    """Edrys-like traffic: short text edits and small JSON objects rewritten in a map."""
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(bytes(event.update)))
    text = doc.get("t", type=pycrdt.Text)
    users = doc.get("users", type=pycrdt.Map)
    for i in range(count):
        if i % 4 == 3:
            users[f"u{i % 30}"] = {"name": f"user {i % 30}", "room": "Lobby", "t": i}
        else:
            text.insert(len(text) if i % 2 else 0, f"{i % 10}")
    doc.unobserve(subscription)
    return updates


async def until_step2(ws: ClientConnection) -> int:
    received = 0
    while True:
        frame = await ws.recv()
        assert isinstance(frame, bytes)
        received += len(frame)
        if isinstance(yjs.decode_message(frame), yjs.SyncStep2):
            return received


async def join_seconds(port: int) -> tuple[float, int]:
    start = time.perf_counter()
    async with connect(f"ws://127.0.0.1:{port}/{ROOM}", compression=None, max_size=None) as ws:
        await ws.send(yjs.encode_sync_step1(b"\x00"))
        received = await until_step2(ws)
    return time.perf_counter() - start, received


async def max_loop_lag(stop: asyncio.Event) -> float:
    """The longest the event loop was late for a 5 ms timer until ``stop`` is set."""
    worst = 0.0
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(0.005)
        worst = max(worst, time.perf_counter() - start - 0.005)
    return worst


async def join_times(data_dir: Path, compact_updates: int) -> tuple[float, float, int, float]:
    settings = Settings(
        host="127.0.0.1",
        port=0,
        data_dir=str(data_dir),
        compact_updates=compact_updates,
        compact_bytes=NEVER if compact_updates == NEVER else Settings().compact_bytes,
    )
    async with RelayServer(settings) as relay:
        stop = asyncio.Event()
        lag = asyncio.create_task(max_loop_lag(stop))
        cold, _ = await join_seconds(relay.port)
        stop.set()
        warm, received = await join_seconds(relay.port)
    return cold, warm, received, await lag


def raw_store(data: Path, updates: list[bytes]) -> SQLiteStore:
    store = SQLiteStore(data)
    for start in range(0, len(updates), 5000):
        store.append([(ROOM, u) for u in updates[start : start + 5000]])
    return store


async def report_join(label: str, data: Path, compact_updates: int) -> None:
    cold, warm, size, lag = await join_times(data, compact_updates)
    print(
        f"  {label:<28} first {cold:6.2f} s  next {warm:6.3f} s  ({size} bytes sent)"
        f"  max loop lag during the first {lag * 1000:.0f} ms"
    )


async def bench_join(count: int) -> None:
    updates = small_updates(count)
    print(f"join: room of {len(updates)} updates, {sum(map(len, updates))} bytes")
    with tempfile.TemporaryDirectory() as tmp:
        raw, merged_on_load = Path(tmp) / "raw", Path(tmp) / "load"
        raw_store(merged_on_load, updates).close()
        store = raw_store(raw, updates)
        store.close()
        await report_join("raw log, compaction off", raw, NEVER)
        await report_join("raw log, merged on load", merged_on_load, Settings().compact_updates)
        store = SQLiteStore(raw)
        start = time.perf_counter()
        done = admin.compact_room(store, ROOM)
        took = time.perf_counter() - start
        store.close()
        print(
            f"  offline compact              {took:6.2f} s: {done.bytes_before} -> "
            f"{done.bytes_after} bytes"
        )
        await report_join("compacted", raw, NEVER)


async def write(port: int, updates: list[bytes]) -> None:
    async with connect(f"ws://127.0.0.1:{port}/tp", compression=None) as ws:
        for update in updates:
            await ws.send(yjs.encode_sync_update(update))
        await ws.recv()  # greeting; stay open until the reader has everything
        await asyncio.sleep(0)


async def throughput(store: str, writers: int, per_writer: int) -> float:
    batches = [small_updates(per_writer) for _ in range(writers)]
    total = writers * per_writer
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(host="127.0.0.1", port=0, store=store, data_dir=tmp)  # type: ignore[arg-type]
        async with (
            RelayServer(settings) as relay,
            connect(f"ws://127.0.0.1:{relay.port}/tp", compression=None) as reader,
        ):
            await reader.recv()
            start = time.perf_counter()
            sending = [asyncio.create_task(write(relay.port, b)) for b in batches]
            seen = 0
            while seen < total:
                frame = await reader.recv()
                assert isinstance(frame, bytes)
                seen += isinstance(yjs.decode_message(frame), yjs.SyncUpdate)
            elapsed = time.perf_counter() - start
            await asyncio.gather(*sending)
    return total / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=100_000)
    parser.add_argument("--writers", type=int, default=10)
    parser.add_argument("--per-writer", type=int, default=2000)
    args = parser.parse_args()
    await bench_join(args.updates)
    print(f"throughput: {args.writers} writers x {args.per_writer} updates, one reader")
    for store in ("sqlite", "memory"):
        rate = await throughput(store, args.writers, args.per_writer)
        print(f"  --store {store:<6}  {rate:8.0f} updates/s relayed")


if __name__ == "__main__":
    asyncio.run(main())
