"""Where an update's time goes inside the relay at 1 room × 100 clients, 100 updates/s.

Runs edrys-relay in this process (pin it: ``taskset -c 0``), drives ``loadgen.mjs``'s latency
scenario against it on CPU 1, and times each update from its arrival at the Yjs door to the
store's commit callback, the thread round trip of the commit, and the Outbox flush that writes
it to the 99 receivers. Traffic to 127.0.0.1 only; the run lasts ``--seconds``.

    taskset -c 0 .venv/bin/python bench/latency_path.py --store sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from edrys_relay.config import Settings
from edrys_relay.server import doors, rooms, transport
from edrys_relay.server.app import RelayServer
from edrys_relay.storage import writer

BENCH = Path(__file__).resolve().parent
SYNC_UPDATE = b"\x00\x02"
"""The envelope of a y-websocket document update (protocols.md §2.2)."""

Samples = dict[str, list[float]]


def instrument(samples: Samples) -> None:
    """Wrap the door, the store writer, the room's commit callback and the Outbox flush."""
    clock = time.perf_counter
    last: dict[str, float] = {}

    def timed(name: str, started: float) -> None:
        samples.setdefault(name, []).append(clock() - started)

    receive = doors.YjsDoor.receive

    def door_receive(self: doors.YjsDoor, message: str | bytes) -> None:
        if isinstance(message, bytes) and message.startswith(SYNC_UPDATE):
            last["received"] = clock()
        receive(self, message)

    run = writer.StoreWriter._run

    async def writer_run(self: writer.StoreWriter, fn: Callable[..., Any], *args: object) -> Any:
        started = clock()
        result = await run(self, fn, *args)
        timed("commit thread round trip", started)
        return result

    committed = rooms.Room._committed

    def room_committed(self: rooms.Room, pending: Any, seq: int) -> None:
        if pending.frame is not None and "received" in last:
            timed("arrival to commit callback", last["received"])
            last["committed"] = clock()
        committed(self, pending, seq)

    flush = transport.Outbox.flush

    def outbox_flush(self: transport.Outbox) -> None:
        started = clock()
        flush(self)
        if "committed" in last:
            samples.setdefault("commit callback to flush", []).append(
                started - last.pop("committed")
            )
            timed("flush (writes to every receiver)", started)

    doors.YjsDoor.receive = door_receive  # type: ignore[method-assign]
    writer.StoreWriter._run = writer_run  # type: ignore[method-assign]
    rooms.Room._committed = room_committed  # type: ignore[method-assign]
    transport.Outbox.flush = outbox_flush  # type: ignore[method-assign]


async def measure(store: Literal["sqlite", "memory"], seconds: float) -> None:
    samples: Samples = {}
    instrument(samples)
    settings = Settings(host="127.0.0.1", port=0, data_dir=tempfile.mkdtemp(), store=store)
    async with RelayServer(settings) as server:
        cfg = {
            "family": "yjs",
            "kind": "latency",
            "rooms": 1,
            "clientsPerRoom": 100,
            "rate": 100,
            "seconds": seconds,
            "port": server.port,
        }
        gen = await asyncio.create_subprocess_exec(
            "taskset",
            "-c",
            "1",
            "node",
            str(BENCH / "loadgen.mjs"),
            json.dumps(cfg),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert gen.stdin is not None and gen.stdout is not None

        async def event(name: str) -> dict[str, Any]:
            async with asyncio.timeout(seconds + 120):
                while True:
                    line = await gen.stdout.readline()  # type: ignore[union-attr]
                    if not line:
                        raise RuntimeError("load generator ended")
                    data: dict[str, Any] = json.loads(line)
                    if data.get("event") == name:
                        return data

        try:
            await event("ready")
            samples.clear()
            gen.stdin.write(b"go\n")
            done = await event("done")
            gen.stdin.write(b"quit\n")
            await gen.wait()
        finally:
            if gen.returncode is None:
                gen.kill()
    print(f"store={store}: delivery p50 {done['p50_ms']:.2f} ms, p99 {done['p99_ms']:.2f} ms")
    for name, values in samples.items():
        values.sort()
        p50, p99 = values[len(values) // 2], values[int(len(values) * 0.99)]
        print(f"  {name}: n={len(values)} p50 {p50 * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    store: Literal["sqlite", "memory"] = "memory" if args.store == "memory" else "sqlite"
    asyncio.run(measure(store, args.seconds))


if __name__ == "__main__":
    main()
