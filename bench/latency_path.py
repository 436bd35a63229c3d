"""Where an update's time goes, 1 room × 100 clients at 100 updates/s: one timeline per update.

Runs edrys-relay in this process (pin it: ``taskset -c 0``) and drives ``loadgen.mjs``'s
latency scenario against it on CPU 1 with the load generator's trace on. The load generator
stamps each send and each receipt, the relay stamps each stage of the update, all on
CLOCK_MONOTONIC (Node's ``process.hrtime``, Python's ``time.monotonic``), so one update's
stages line up across the two processes: sent → read by the relay → queued for the store →
the writer thread starts → commit done → callbacks run → flush starts → flush done → first
receipt. ``--reference`` runs the Node reference server instead (only the load generator's
stamps: sent → first receipt, and the spacing of receipts). Traffic to 127.0.0.1 only.

    taskset -c 0 .venv/bin/python bench/latency_path.py --store sqlite
    taskset -c 0 .venv/bin/python bench/latency_path.py --store sqlite --synchronous normal
    taskset -c 0 .venv/bin/python bench/latency_path.py --store memory
    .venv/bin/python bench/latency_path.py --reference
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from edrys_relay.cli.serve import tune_gc
from edrys_relay.config import Settings
from edrys_relay.server import connection, doors, rooms, transport
from edrys_relay.server.app import RelayServer
from edrys_relay.storage import memory, sqlite, writer

BENCH = Path(__file__).resolve().parent
SYNC_UPDATE = b"\x00\x02"
"""The envelope of a y-websocket document update (protocols.md §2.2)."""
STAGES = ("read", "queued", "thread", "committed", "callback", "flush", "flushed")

Stamps = dict[str, list[int]]


def micros() -> int:
    return time.monotonic_ns() // 1000


def instrument(stamps: Stamps) -> None:
    """Stamp each stage of an update: the door, the store writer, the store, the Outbox."""
    for name in STAGES:
        stamps[name] = []
    reads: list[int] = []

    buffer_updated = connection.Connection.buffer_updated

    def read(self: connection.Connection, nbytes: int) -> None:
        reads.append(micros())
        buffer_updated(self, nbytes)

    receive = doors.YjsDoor.receive

    def door(self: doors.YjsDoor, message: str | bytes) -> None:
        if isinstance(message, bytes) and message.startswith(SYNC_UPDATE):
            stamps["read"].append(reads[-1])
        receive(self, message)

    append = writer.StoreWriter.append

    def queued(self: writer.StoreWriter, *args: Any) -> None:
        stamps["queued"].append(micros())
        append(self, *args)

    def store_append(original: Callable[..., list[int]]) -> Callable[..., list[int]]:
        def timed(self: object, updates: Sequence[tuple[str, bytes]]) -> list[int]:
            stamps["thread"].append(micros())
            seqs = original(self, updates)
            stamps["committed"].append(micros())
            return seqs

        return timed

    committed = rooms.Room._committed

    def callback(self: rooms.Room, *args: Any) -> None:
        stamps["callback"].append(micros())
        committed(self, *args)

    flush = transport.Outbox.flush

    def outbox_flush(self: transport.Outbox) -> None:
        if self._dirty:
            stamps["flush"].append(micros())
            flush(self)
            stamps["flushed"].append(micros())
        else:
            flush(self)

    connection.Connection.buffer_updated = read  # type: ignore[method-assign]
    doors.YjsDoor.receive = door  # type: ignore[method-assign]
    writer.StoreWriter.append = queued  # type: ignore[method-assign]
    for store in (sqlite.SQLiteStore, memory.MemoryStore):
        store.append = store_append(store.append)  # type: ignore[method-assign]
    rooms.Room._committed = callback  # type: ignore[method-assign]
    transport.Outbox.flush = outbox_flush  # type: ignore[method-assign]


async def drive(port: int, seconds: float, trace: Path) -> dict[str, Any]:
    """The load generator's latency scenario at 1 × 100, with its trace written to ``trace``."""
    cfg = {
        "family": "yjs",
        "kind": "latency",
        "rooms": 1,
        "clientsPerRoom": 100,
        "rate": 100,
        "seconds": seconds,
        "port": port,
        "traceFile": str(trace),
    }
    gen = await asyncio.create_subprocess_exec(
        *("taskset", "-c", "1", "node", str(BENCH / "loadgen.mjs"), json.dumps(cfg)),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert gen.stdin is not None and gen.stdout is not None

    async def event(name: str) -> dict[str, Any]:
        assert gen.stdout is not None
        async with asyncio.timeout(seconds + 120):
            while True:
                line = await gen.stdout.readline()
                if not line:
                    raise RuntimeError("load generator ended")
                data: dict[str, Any] = json.loads(line)
                if data.get("event") == name:
                    return data

    try:
        await event("ready")
        gen.stdin.write(b"go\n")
        done = await event("done")
        gen.stdin.write(b"quit\n")
        await gen.wait()
    finally:
        if gen.returncode is None:
            gen.kill()
    return done


def load_trace(trace: Path) -> tuple[list[int], list[list[int]]]:
    """Send stamps in order, and each update's receipt stamps."""
    data = json.loads(trace.read_text())
    sent = {seq: at for _room, seq, at in data["sent"]}
    receipts: dict[int, list[int]] = {}
    for _room, seq, _client, at in data["recv"]:
        receipts.setdefault(seq, []).append(at)
    seqs = sorted(sent)
    return [sent[s] for s in seqs], [sorted(receipts.get(s, [])) for s in seqs]


def report(rows: dict[str, list[float]]) -> None:
    for name, values in rows.items():
        values.sort()
        if not values:
            continue
        p50 = values[len(values) // 2]
        p90 = values[int(len(values) * 0.9)]
        p99 = values[int(len(values) * 0.99)]
        print(f"  {name:34s} p50 {p50:7.0f} µs   p90 {p90:7.0f}   p99 {p99:7.0f}")


def receipt_rows(sent: list[int], receipts: list[list[int]]) -> dict[str, list[float]]:
    rows: dict[str, list[float]] = {"sent → first receipt": [], "receipt spacing (µs each)": []}
    for at, got in zip(sent, receipts, strict=True):
        if len(got) > 1:
            rows["sent → first receipt"].append(got[0] - at)
            rows["receipt spacing (µs each)"].append((got[-1] - got[0]) / (len(got) - 1))
    return rows


def timeline(stamps: Stamps, sent: list[int], receipts: list[list[int]]) -> dict[str, list[float]]:
    """Match each update's stages: every stage is the first of its kind after the one before."""
    labels = [
        "sent → read by the relay",
        "read → queued for the store (door)",
        "queued → writer thread starts",
        "commit in the thread",
        "commit → callbacks on the loop",
        "callbacks → flush (relay queued)",
        "flush: one send() per receiver",
        "flush start → first receipt",
    ]
    rows: dict[str, list[float]] = {label: [] for label in labels}
    for at, got in zip(sent, receipts, strict=True):
        if not got:
            continue
        chain = [at]
        for name in STAGES:
            series = stamps[name]
            i = bisect.bisect_left(series, chain[-1])
            if i == len(series):
                break
            chain.append(series[i])
        else:
            steps = [b - a for a, b in itertools.pairwise(chain)]
            steps.append(got[0] - chain[STAGES.index("flush") + 1])
            for label, value in zip(labels, steps, strict=True):
                rows[label].append(value)
    return rows


async def measure_relay(
    store: Literal["sqlite", "memory"], synchronous: Literal["full", "normal"], seconds: float
) -> None:
    stamps: Stamps = {}
    instrument(stamps)
    data_dir = tempfile.mkdtemp(prefix="edrys-latency-")
    trace = Path(data_dir) / "trace.json"
    settings = Settings(
        host="127.0.0.1", port=0, data_dir=data_dir, store=store, sqlite_synchronous=synchronous
    )
    async with RelayServer(settings) as server:
        tune_gc()
        for values in stamps.values():
            values.clear()
        done = await drive(server.port, seconds, trace)
    sent, receipts = load_trace(trace)
    p50, p99 = done["p50_ms"], done["p99_ms"]
    label = f"store={store}" + (f", synchronous={synchronous}" if store == "sqlite" else "")
    print(f"edrys-relay, {label}: delivery p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    report(timeline(stamps, sent, receipts))
    report(receipt_rows(sent, receipts))


async def measure_reference(seconds: float) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    script = BENCH / "node_modules" / "@y" / "websocket-server" / "src" / "server.js"
    log = Path(tempfile.mkdtemp(prefix="edrys-latency-")) / "reference.log"
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port)}
    with log.open("wb") as out:
        server = await asyncio.create_subprocess_exec(
            *("taskset", "-c", "0", "node", str(script)), stdout=out, stderr=out, env=env
        )
    try:
        deadline = time.monotonic() + 20
        while "running at" not in log.read_text(errors="replace"):
            if time.monotonic() > deadline or server.returncode is not None:
                raise RuntimeError("reference server did not start")
            await asyncio.sleep(0.05)
        trace = log.with_name("trace.json")
        done = await drive(port, seconds, trace)
    finally:
        server.terminate()
        await server.wait()
    sent, receipts = load_trace(trace)
    print(f"reference: delivery p50 {done['p50_ms']:.2f} ms, p99 {done['p99_ms']:.2f} ms")
    report(receipt_rows(sent, receipts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument("--synchronous", choices=["full", "normal"], default="full")
    parser.add_argument("--reference", action="store_true", help="time the Node server instead")
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    if args.reference:
        asyncio.run(measure_reference(args.seconds))
        return
    store: Literal["sqlite", "memory"] = "memory" if args.store == "memory" else "sqlite"
    synchronous: Literal["full", "normal"] = "normal" if args.synchronous == "normal" else "full"
    asyncio.run(measure_relay(store, synchronous, args.seconds))


if __name__ == "__main__":
    main()
