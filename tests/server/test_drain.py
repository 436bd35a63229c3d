"""Graceful drain of a real process on SIGTERM (docs/operations.md "Graceful stop"): the
listener closes first, every client gets 1012, one that never completes its closing handshake
is cut off after ``--close-timeout``, the store is flushed, the process exits 0, and each phase
is timed in the JSON log."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from edrys_relay.protocol import yjs
from tests.server.opskit import json_log, wait_for_event
from tests.server.relayproc import RelayProcess, free_port
from tests.server.test_process_lifecycle import close_code, fetch_updates
from tests.server.ydata import text_of, text_updates

CLOSE_TIMEOUT = 1.0


@pytest.fixture
async def relay_process(tmp_path: Path) -> AsyncIterator[RelayProcess]:
    proc = RelayProcess(
        free_port(), tmp_path / "data", "--log-format=json", f"--close-timeout={CLOSE_TIMEOUT}"
    )
    try:
        yield proc
    finally:
        await proc.stop()


async def stuck_client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client that completes the upgrade and then never answers a close frame."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /drain-room HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
    return reader, writer


async def test_sigterm_drain_is_ordered_bounded_and_measured(
    relay_process: RelayProcess, record_property: Any
) -> None:
    await relay_process.start()
    log = relay_process.data_dir.parent / "server-1.log"
    url = f"{relay_process.url}/drain-room"
    updates = text_updates("drained ", "and ", "kept")
    async with (
        connect(url, compression=None) as writer,
        connect(url, compression=None) as reader,
        connect(f"{relay_process.url}/signaling", compression=None) as signaling,
    ):
        await writer.recv()
        await reader.recv()
        _, stuck = await stuck_client(relay_process.port)
        for update in updates:
            await writer.send(yjs.encode_sync_update(update))
        await writer.send(yjs.encode_sync_step1(b"\x00"))  # answered after the 3 commits
        while not isinstance(yjs.decode_message(await writer.recv()), yjs.SyncStep2):  # type: ignore[arg-type]
            pass

        assert relay_process.proc is not None
        signalled = time.monotonic()
        relay_process.proc.send_signal(signal.SIGTERM)
        draining = await wait_for_event(log, "server.draining")
        # the stuck client holds the drain open for --close-timeout: the listener is closed
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", relay_process.port)
        for client in (writer, reader, signaling):
            assert await close_code(client) == 1012
        async with asyncio.timeout(20):
            await relay_process.proc.communicate()
        exited = time.monotonic() - signalled
        stuck.close()
    assert relay_process.proc.returncode == 0

    records = json_log(log)  # every line is JSON
    drained = next(r for r in records if r["event"] == "server.drained")
    assert draining["connections"] == drained["connections"] == 4
    assert drained["aborted"] == 1  # only the stuck client was cut off
    for phase in ("seconds", "flush_seconds", "close_seconds"):
        record_property(f"drain_{phase}", drained[phase])
    record_property("drain_exit_seconds", round(exited, 4))
    print(f"drain: {drained} exit after {exited:.3f} s")
    codes = [r.get("code") for r in records if r["event"] == "connection.closed"]
    assert len(codes) == 4 and codes.count(1012) == 3, codes

    await relay_process.start()
    assert text_of(await fetch_updates(url)) == "drained and kept"
