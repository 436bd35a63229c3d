"""kill -9 the server while a writer streams updates (issue #3 test 2, docs/threats.md F1).

A writer appends unique tokens to a Y.Array, one update per token; an observer that never
writes records what the server relays to it. The server is SIGKILLed at random moments and
restarted. Every token the observer saw must be in the document a fresh client receives, once.
After each kill the writer starts a new document, so it never re-sends what the server lost:
only the server's storage can make the observer's tokens reappear.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pycrdt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from edrys_relay.protocol import yjs
from tests.server.relayproc import RelayProcess, free_port

KILLS = int(os.environ.get("EDRYS_CRASH_KILLS", "12"))
ROOM = "crash-room"
RETRYABLE = (OSError, ConnectionClosed, InvalidHandshake, TimeoutError)


@pytest.fixture
async def relay_process(tmp_path: Path) -> AsyncIterator[RelayProcess]:
    # A small compaction threshold, so kills also land during and right after merges.
    proc = RelayProcess(free_port(), tmp_path / "data", "--compact-updates=40")
    try:
        yield proc
    finally:
        await proc.stop()


async def write_tokens(url: str, stop: asyncio.Event, counter: list[int]) -> None:
    """Stream one token per update; after a disconnect, continue with a fresh document."""
    session = 0
    while not stop.is_set():
        session += 1
        doc: pycrdt.Doc[Any] = pycrdt.Doc()
        updates: list[bytes] = []
        doc.observe(lambda event, out=updates: out.append(bytes(event.update)))
        tokens = doc.get("log", type=pycrdt.Array)
        try:
            async with connect(url, compression=None, open_timeout=2) as ws:
                for i in range(100_000):  # bounded; the test stops us long before
                    if stop.is_set():
                        return
                    tokens.append(f"s{session}-{i}")
                    await ws.send(yjs.encode_sync_update(updates.pop()))
                    counter[0] += 1
                    await asyncio.sleep(0.002)
        except RETRYABLE:
            await asyncio.sleep(0.05)


async def observe(url: str, doc: pycrdt.Doc[Any]) -> None:
    """Apply everything the server sends; never send content back."""
    while True:
        try:
            async with connect(url, compression=None, open_timeout=2, max_size=None) as ws:
                await ws.send(yjs.encode_sync_step1(bytes(doc.get_state())))
                async for frame in ws:
                    assert isinstance(frame, bytes)
                    message = yjs.decode_message(frame)
                    if isinstance(message, yjs.SyncUpdate | yjs.SyncStep2):
                        doc.apply_update(message.update)
        except RETRYABLE:
            await asyncio.sleep(0.05)


async def fetch_tokens(url: str) -> list[str]:
    """What a fresh client gets: the server's whole document."""
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    async with connect(url, compression=None, max_size=None) as ws, asyncio.timeout(20):
        await ws.send(yjs.encode_sync_step1(b"\x00"))
        while True:
            frame = await ws.recv()
            assert isinstance(frame, bytes)
            message = yjs.decode_message(frame)
            if isinstance(message, yjs.SyncUpdate | yjs.SyncStep2):
                doc.apply_update(message.update)
            if isinstance(message, yjs.SyncStep2):
                return [str(token) for token in doc.get("log", type=pycrdt.Array)]


async def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_nothing_seen_is_lost_across_kill_9(relay_process: RelayProcess) -> None:
    seed = int(os.environ.get("EDRYS_CRASH_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    url = f"{relay_process.url}/{ROOM}"
    observed: pycrdt.Doc[Any] = pycrdt.Doc()
    seen = observed.get("log", type=pycrdt.Array)
    stop = asyncio.Event()
    sent = [0]
    await relay_process.start()
    writer = asyncio.create_task(write_tokens(url, stop, sent))
    observer = asyncio.create_task(observe(url, observed))
    try:
        for _ in range(KILLS):
            before = len(seen)
            # the writer must be streaming again, so the kill lands mid-stream
            await wait_until(lambda b=before: len(seen) > b, timeout=20)
            await asyncio.sleep(rng.uniform(0.05, 0.6))
            await relay_process.kill()
            await relay_process.start()
    finally:
        stop.set()
        await asyncio.wait_for(writer, timeout=10)
        observer.cancel()
        await asyncio.gather(observer, return_exceptions=True)
    observed_tokens = [str(token) for token in seen]
    await relay_process.kill()  # one more crash, with nobody connected
    await relay_process.start()
    final = await fetch_tokens(url)
    missing = set(observed_tokens) - set(final)
    assert not missing, f"seed {seed}: {len(missing)} observed tokens lost, e.g. {min(missing)}"
    assert len(final) == len(set(final)), f"seed {seed}: duplicated content"
    assert len(observed_tokens) >= KILLS * 10, f"seed {seed}: too little traffic to be a test"
    assert relay_process.starts == KILLS + 2
