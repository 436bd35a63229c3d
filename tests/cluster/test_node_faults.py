"""Faults of a cluster: kill -9 of nodes (also mid-compaction) and of Redis itself.

As in tests/server/test_crash.py, a writer appends unique tokens and starts a fresh document
after every disconnect, so only storage can bring back what an observer saw; here the
observer is on another node than the writer, and storage is Redis.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

import pycrdt
from websockets.asyncio.client import connect

from edrys_relay.cluster import keys
from edrys_relay.protocol import yjs
from tests.cluster.redisproc import Cluster, RedisProcess
from tests.server.relayproc import RelayProcess
from tests.server.test_crash import fetch_tokens, observe, wait_until, write_tokens

KILLS = int(os.environ.get("EDRYS_CLUSTER_KILLS", "4"))
ROOM = "cluster-crash"


def check(observed: list[str], final: list[str], where: str, seed: int) -> None:
    missing = set(observed) - set(final)
    assert not missing, (
        f"seed {seed}, {where}: {len(missing)} seen tokens lost, e.g. {min(missing)}"
    )
    assert len(final) == len(set(final)), f"seed {seed}, {where}: duplicated content"


async def test_kill_9_of_either_node_loses_nothing_the_other_nodes_observer_saw(
    cluster: Cluster,
) -> None:
    seed = int(os.environ.get("EDRYS_CRASH_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    a, b = await cluster.start(2, "--compact-updates=40")
    observed: pycrdt.Doc[Any] = pycrdt.Doc()
    seen = observed.get("log", type=pycrdt.Array)
    stop = asyncio.Event()
    sent = [0]
    writer = asyncio.create_task(write_tokens(f"{a.url}/{ROOM}", stop, sent))
    observer = asyncio.create_task(observe(f"{b.url}/{ROOM}", observed))
    try:
        for round_ in range(KILLS):
            victim = (a, b)[round_ % 2]  # the writer's node, then the observer's
            before = len(seen)
            await wait_until(lambda b=before: len(seen) > b + 20, timeout=20)
            await asyncio.sleep(rng.uniform(0.05, 0.5))
            await victim.kill()
            await victim.start()
    finally:
        stop.set()
        await asyncio.wait_for(writer, timeout=10)
        observer.cancel()
        await asyncio.gather(observer, return_exceptions=True)
    observed_tokens = [str(token) for token in seen]
    assert len(observed_tokens) >= KILLS * 20, f"seed {seed}: too little traffic to be a test"
    check(observed_tokens, await fetch_tokens(f"{a.url}/{ROOM}"), "node a", seed)
    check(observed_tokens, await fetch_tokens(f"{b.url}/{ROOM}"), "node b", seed)
    await a.kill()
    await b.kill()
    await a.start()  # nobody connected anywhere: the room comes back from Redis alone
    check(observed_tokens, await fetch_tokens(f"{a.url}/{ROOM}"), "restarted cluster", seed)


async def write_burst(node: RelayProcess, count: int, prefix: str) -> None:
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(bytes(event.update)))
    log = doc.get("log", type=pycrdt.Array)
    async with connect(f"{node.url}/{ROOM}", compression=None) as ws:
        for i in range(count):
            log.append(f"{prefix}-{i}")
            await ws.send(yjs.encode_sync_update(updates.pop()))
        await ws.send(yjs.encode_sync_step1(bytes(doc.get_state())))
        async with asyncio.timeout(20):  # the answer comes after every update is delivered
            while not isinstance(yjs.decode_message(await ws.recv()), yjs.SyncStep2):
                pass


async def test_kill_9_of_the_compaction_worker_mid_compaction(
    cluster: Cluster, redis_server: RedisProcess
) -> None:
    a, b = await cluster.start(
        2,
        "--compact-updates=1500",
        "--compaction-lease=1",
        "--message-rate=1e6",
        "--message-burst=100000",
    )
    redis = redis_server.client()
    written: list[str] = []
    killed = 0
    try:
        for attempt in range(6):
            # by PID: workers are named after it, and a restarted node has a new one
            nodes = {node.proc.pid: node for node in (a, b)}  # type: ignore[union-attr]
            prefix = f"burst{attempt}"
            burst = asyncio.create_task(write_burst(a, 1500, prefix))
            victim = None
            async with asyncio.timeout(30):
                while victim is None and not (burst.done() and await redis.xlen(keys.TASKS) == 0):
                    pending = await redis.xpending(keys.TASKS, keys.WORKERS)
                    if pending["pending"]:
                        consumer = pending["consumers"][0]["name"]
                        victim = nodes[int(consumer.split(b"-")[0])]
                    await asyncio.sleep(0.002)
            await burst
            written += [f"{prefix}-{i}" for i in range(1500)]
            if victim is not None:
                await victim.kill()  # holding the task: merging, or about to
                killed += 1
                survivor = b if victim is a else a
                await wait_until_compacted(redis, survivor)
                await victim.start()
                if killed == 2:
                    break
        assert killed >= 1, "never caught a worker holding a task"
        snapshot = await redis.hget(keys.snapshot_key(ROOM), b"last")
        assert snapshot is not None
        for node in (a, b):
            final = await fetch_tokens(f"{node.url}/{ROOM}")
            assert set(written) <= set(final) and len(final) == len(set(final))
    finally:
        await redis.aclose()


async def wait_until_compacted(redis: Any, survivor: RelayProcess) -> None:
    """The task is done (by the survivor, after the lease) and the stream is trimmed."""
    async with asyncio.timeout(30):
        while True:
            pending = await redis.xpending(keys.TASKS, keys.WORKERS)
            if not pending["pending"] and await redis.xlen(keys.log_key(ROOM)) < 100:
                return
            await asyncio.sleep(0.05)
    del survivor


async def test_redis_restart_nodes_reconnect_and_catch_up(
    cluster: Cluster, redis_server: RedisProcess
) -> None:
    a, b = await cluster.start(2)
    observed: pycrdt.Doc[Any] = pycrdt.Doc()
    seen = observed.get("log", type=pycrdt.Array)
    stop = asyncio.Event()
    sent = [0]
    writer = asyncio.create_task(write_tokens(f"{a.url}/{ROOM}", stop, sent))
    observer = asyncio.create_task(observe(f"{b.url}/{ROOM}", observed))
    try:
        for _ in range(2):
            before = len(seen)
            await wait_until(lambda b=before: len(seen) > b + 20, timeout=20)
            await redis_server.kill()
            await asyncio.sleep(0.5)
            await redis_server.start()  # same port and directory: the AOF brings it all back
        before = len(seen)
        await wait_until(lambda: len(seen) > before + 20, timeout=30)
    finally:
        stop.set()
        await asyncio.wait_for(writer, timeout=10)
        observer.cancel()
        await asyncio.gather(observer, return_exceptions=True)
    observed_tokens = [str(token) for token in seen]
    check(observed_tokens, await fetch_tokens(f"{a.url}/{ROOM}"), "node a", 0)
    check(observed_tokens, await fetch_tokens(f"{b.url}/{ROOM}"), "node b", 0)
