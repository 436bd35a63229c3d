"""Where does an idle connection's memory go? tracemalloc diff around N idle clients.

Runs edrys-relay in this process, drives ``loadgen.mjs`` (idle scenario) against it and prints
the allocation sites that grew, per connection. Traffic to 127.0.0.1 only.

    python bench/memprobe.py -n 1000
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import sys
import tracemalloc
from pathlib import Path

from edrys_relay.config import Settings
from edrys_relay.server.app import RelayServer

BENCH = Path(__file__).resolve().parent


async def probe(n: int, per_room: int, top: int, stack: str) -> None:
    tracemalloc.start(8)
    async with contextlib.AsyncExitStack() as stack_ctx:
        if stack == "picows":
            from proto_picows import start  # type: ignore[import-not-found]

            port = await start(0)
        else:
            server = await stack_ctx.enter_async_context(
                RelayServer(Settings(host="127.0.0.1", port=0))
            )
            port = server.port
        cfg = {"kind": "idle", "connections": n, "perRoom": per_room, "parallel": 50}
        cfg["port"] = port
        gen = await asyncio.create_subprocess_exec(
            "node",
            str(BENCH / "loadgen.mjs"),
            json.dumps(cfg),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert gen.stdin is not None and gen.stdout is not None

        async def event(name: str) -> dict[str, object]:
            async with asyncio.timeout(180):
                while True:
                    line = await gen.stdout.readline()  # type: ignore[union-attr]
                    if not line:
                        raise RuntimeError("load generator ended")
                    data = json.loads(line)
                    if data.get("event") == name:
                        return dict(data)

        await event("ready")
        gc.collect()
        types0 = collections.Counter(type(o).__name__ for o in gc.get_objects())
        snap0 = tracemalloc.take_snapshot()
        gen.stdin.write(b"go\n")
        done = await event("done")
        await asyncio.sleep(1.0)
        gc.collect()
        snap1 = tracemalloc.take_snapshot()
        types1 = collections.Counter(type(o).__name__ for o in gc.get_objects())
        conns = int(str(done["connections"]))
        stats = snap1.compare_to(snap0, "traceback")
        total = sum(s.size_diff for s in stats)
        print(f"{conns} connections: traced Python heap +{total / conns:.0f} B/connection")
        for stat in stats[:top]:
            frames = [f for f in stat.traceback if "edrys_relay" in f.filename] or list(
                stat.traceback
            )
            where = ", ".join(f"{Path(f.filename).name}:{f.lineno}" for f in frames[-3:])
            per = f"{stat.size_diff / conns:8.0f} B/conn  {stat.count_diff / conns:5.1f} obj"
            print(f"{per}  {where}")
        by_file = snap1.compare_to(snap0, "filename")
        print("\nby allocating file:")
        for stat in by_file[:top]:
            name = "/".join(Path(stat.traceback[0].filename).parts[-2:])
            print(f"{stat.size_diff / conns:8.0f} B/conn  {name}")
        print("\nobjects per connection by type (gc-tracked):")
        for name, count in (types1 - types0).most_common(top):
            print(f"{count / conns:6.2f}  {name}")
        gen.stdin.write(b"quit\n")
        await gen.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--per-room", type=int, default=10)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--stack", choices=["websockets", "picows"], default="websockets")
    args = parser.parse_args()
    asyncio.run(probe(args.n, args.per_room, args.top, args.stack))
    return 0


if __name__ == "__main__":
    sys.exit(main())
