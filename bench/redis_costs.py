"""What the Redis bus's building blocks cost, each alone (docs/performance.md "Scale-out").

    .venv/bin/python bench/redis_costs.py

Starts a throwaway redis-server (no persistence) on a free port and measures: this process's
CPU per pub/sub message read through redis-py's ``PubSub`` and through hiredis fed straight
from the socket (``cluster/resp.py``'s way); redis-py's client CPU per pipelined ``XADD``;
Redis' own time per entry (``INFO commandstats``) of the bus's append script at several batch
sizes, against plain ``XADD``; and, without Redis, what a node spends on another node's update
(``check_update`` against ``TrackedDoc.apply_trusted``) and on a compaction of an 8,000-edit
text (merge, then the parse every node does to install the snapshot).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import hiredis
import pycrdt
from redis.asyncio import Redis

from edrys_relay.cluster.bus import _APPEND
from edrys_relay.protocol import yupdate
from edrys_relay.protocol.ydoc import TrackedDoc, check_update

MESSAGES = 50_000
ENTRIES = 20_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def publish(port: int, channel: bytes, count: int) -> None:
    redis = Redis(port=port)
    payload = b"1796413747674-0 node-1 u" + os.urandom(30)
    for _ in range(count // 500):
        pipe = redis.pipeline(transaction=False)
        for _ in range(500):
            pipe.publish(channel, payload)
        await pipe.execute()
    await redis.aclose()


async def publisher(port: int, channel: bytes) -> asyncio.subprocess.Process:
    """Publish in another process, so this one's CPU time is the subscriber's alone."""
    return await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--publish", str(port), channel.decode()
    )


async def pubsub_costs(port: int) -> None:
    started = time.process_time()
    await publish(port, b"nobody", MESSAGES)
    cost = (time.process_time() - started) / MESSAGES * 1e6
    print(f"redis-py pipelined PUBLISH (client CPU): {cost:.1f} µs per command")

    redis = Redis(port=port)
    pubsub = redis.pubsub()
    await pubsub.subscribe(b"a")
    started = time.process_time()
    sender = await publisher(port, b"a")
    got = 0
    while got < MESSAGES:
        message = await pubsub.get_message(timeout=5)
        if message is not None and message["type"] == "message":
            got += 1
    await sender.wait()
    cost = (time.process_time() - started) / MESSAGES * 1e6
    print(f"redis-py PubSub.get_message: {cost:.1f} µs per message")
    await pubsub.aclose()
    await redis.aclose()

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"*2\r\n$9\r\nSUBSCRIBE\r\n$1\r\nb\r\n")
    parser = hiredis.Reader()
    got = -1
    started = time.process_time()
    sender = None
    while got < MESSAGES:
        parser.feed(await reader.read(256 * 1024))
        while (reply := parser.gets()) is not False:
            if reply[0] == b"subscribe":
                got, sender = 0, await publisher(port, b"b")
            elif reply[0] == b"message":
                got += 1
    assert sender is not None
    await sender.wait()
    cost = (time.process_time() - started) / MESSAGES * 1e6
    print(f"hiredis from the socket: {cost:.1f} µs per message")
    writer.close()


async def append_costs(port: int) -> None:
    redis = Redis(port=port)
    script = redis.register_script(_APPEND)
    update = os.urandom(30)
    for batch in (1, 10, 100, 1000):
        await redis.flushall()
        await redis.config_resetstat()
        for call in range(ENTRIES // batch):
            keys = [b"edrys:log:room-%d" % ((call * batch + i) % 1000) for i in range(batch)]
            args = [b"node-1"]
            for _ in keys:
                args += [b"u", update]
            await script(keys=keys, args=args)
        stats = await redis.info("commandstats")
        usec = stats["cmdstat_evalsha"]["usec"] / ENTRIES
        print(f"append script, {batch:4d} entries a call: Redis {usec:.2f} µs per entry")
    await redis.flushall()
    await redis.config_resetstat()
    started = time.process_time()
    for _ in range(ENTRIES // 1000):
        pipe = redis.pipeline(transaction=False)
        for i in range(1000):
            pipe.xadd(b"edrys:log:room-%d" % i, {b"u": update, b"o": b"node-1"})
        await pipe.execute()
    client = (time.process_time() - started) / ENTRIES * 1e6
    usec = (await redis.info("commandstats"))["cmdstat_xadd"]["usec"] / ENTRIES
    print(f"pipelined XADD: Redis {usec:.2f} µs per entry, redis-py {client:.1f} µs per command")
    await redis.aclose()


def document_costs() -> None:
    doc: pycrdt.Doc[object] = pycrdt.Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(bytes(event.update)))
    text = doc.get("t", type=pycrdt.Text)
    for _ in range(8000):
        text += "a"
    for name, apply in (
        ("check_update (codec + pycrdt)", check_update),
        ("TrackedDoc.apply_trusted", TrackedDoc.apply_trusted),
    ):
        target = TrackedDoc()
        started = time.perf_counter()
        for update in updates:
            apply(target, update)
        cost = (time.perf_counter() - started) / len(updates) * 1e6
        print(f"{name}: {cost:.1f} µs per one-character update")
        target.close()
    snapshot = yupdate.merge_updates(updates[:7000])
    started = time.perf_counter()
    merged = yupdate.merge_updates([snapshot, *updates[7000:]])
    middle = time.perf_counter()
    yupdate.parse_update(merged)
    done = time.perf_counter()
    print(
        f"compaction of 8,000 edits (snapshot + 1,000): merge {(middle - started) * 1e3:.0f} ms, "
        f"parse {(done - middle) * 1e3:.0f} ms, {len(merged):,} bytes"
    )


async def main() -> int:
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis_costs: needs redis-server (scripts/setup)", file=sys.stderr)
        return 2
    document_costs()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = await asyncio.create_subprocess_exec(
            *(binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp, "--save", ""),
            stdout=subprocess.DEVNULL,
        )
        try:
            await asyncio.sleep(0.5)
            await pubsub_costs(port)
            await append_costs(port)
        finally:
            server.terminate()
            await server.wait()
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--publish"]:
        asyncio.run(publish(int(sys.argv[2]), sys.argv[3].encode(), MESSAGES))
    else:
        sys.exit(asyncio.run(main()))
