"""The real process: SIGTERM/SIGINT shut down cleanly (docs/threats.md F8), the offline room
commands work on what a server stored, and a newer schema is refused."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pycrdt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from edrys_relay.protocol import yjs
from edrys_relay.storage.sqlite import DB_FILENAME
from tests.server.relayproc import RelayProcess, free_port, run_cli
from tests.server.ydata import text_of, text_updates


@pytest.fixture
async def relay_process(tmp_path: Path) -> AsyncIterator[RelayProcess]:
    proc = RelayProcess(free_port(), tmp_path / "data")
    try:
        yield proc
    finally:
        await proc.stop()


async def fetch_updates(url: str) -> list[bytes]:
    async with connect(url, compression=None) as ws, asyncio.timeout(10):
        await ws.send(yjs.encode_sync_step1(b"\x00"))
        updates = []
        while True:
            message = yjs.decode_message(await ws.recv())  # type: ignore[arg-type]
            if isinstance(message, yjs.SyncUpdate | yjs.SyncStep2):
                updates.append(message.update)
            if isinstance(message, yjs.SyncStep2):
                return updates


async def close_code(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as info:
        async with asyncio.timeout(10):
            while True:
                await ws.recv()
    return info.value.rcvd.code if info.value.rcvd else None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_flushes_closes_with_1012_and_exits_0(
    relay_process: RelayProcess, signum: int
) -> None:
    await relay_process.start()
    url = f"{relay_process.url}/lesson"
    updates = text_updates("nothing ", "is ", "lost")
    async with (
        connect(url, compression=None) as writer,
        connect(url, compression=None) as reader,
    ):
        await writer.recv()
        await reader.recv()
        for update in updates:
            await writer.send(yjs.encode_sync_update(update))
        for update in updates:  # relayed, hence committed
            frame = await asyncio.wait_for(reader.recv(), timeout=10)
            while frame != yjs.encode_sync_update(update):
                frame = await asyncio.wait_for(reader.recv(), timeout=10)
        exit_code = await relay_process.signal(signum)
        assert await close_code(writer) == 1012
        assert await close_code(reader) == 1012
    assert exit_code == 0
    await relay_process.start()
    assert text_of(await fetch_updates(url)) == "nothing is lost"


async def test_room_commands_on_a_stored_room(relay_process: RelayProcess, tmp_path: Path) -> None:
    data = str(relay_process.data_dir)
    await relay_process.start()
    url = f"{relay_process.url}/class-1"
    async with connect(url, compression=None) as ws:
        await ws.recv()
        for update in text_updates(*[f"{i} " for i in range(30)]):
            await ws.send(yjs.encode_sync_update(update))
        await ws.send(yjs.encode_sync_step1(b"\x00"))  # answered once the 30 are committed
        while not isinstance(yjs.decode_message(await ws.recv()), yjs.SyncStep2):  # type: ignore[arg-type]
            pass
    assert await relay_process.signal(signal.SIGTERM) == 0
    expected = "".join(f"{i} " for i in range(30))

    code, out, _ = await run_cli("rooms", f"--data-dir={data}")
    assert code == 0 and b"class-1" in out
    export = tmp_path / "class-1.bin"
    code, _, err = await run_cli("export", "class-1", f"--output={export}", f"--data-dir={data}")
    assert code == 0, err
    assert text_of([export.read_bytes()]) == expected
    code, out, err = await run_cli("compact", f"--data-dir={data}")
    assert code == 0 and b"-> 1 /" in out, (out, err)
    code, out, _ = await run_cli("import", "copy", str(export), f"--data-dir={data}")
    assert code == 0
    code, out, _ = await run_cli("rooms", f"--data-dir={data}")
    lines = {line.split()[0]: line.split()[1] for line in out.decode().splitlines()[1:]}
    assert lines == {"class-1": "1", "copy": "1"}

    await relay_process.start()
    for room in ("class-1", "copy"):
        assert text_of(await fetch_updates(f"{relay_process.url}/{room}")) == expected


async def test_room_commands_refuse_bad_input(tmp_path: Path) -> None:
    data = tmp_path / "data"
    code, _, err = await run_cli("rooms", f"--data-dir={data}")
    assert code == 1 and b"no database" in err
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x01\x02\x03 not yjs")
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    doc.get("t", type=pycrdt.Text).insert(0, "x")
    good = tmp_path / "good.bin"
    good.write_bytes(bytes(doc.get_update()))
    code, _, err = await run_cli("serve", "--port=-1", f"--data-dir={data}")
    assert code == 2
    code, _, err = await run_cli("import", "r", str(good), f"--data-dir={data}")
    assert code == 1 and b"no database" in err  # offline commands never create a database
    data.mkdir()
    sqlite3.connect(data / DB_FILENAME).close()
    code, _, err = await run_cli("import", "r", str(bad), f"--data-dir={data}")
    assert code == 1 and b"edrys-relay import:" in err
    code, _, err = await run_cli("export", "nope", f"--data-dir={data}")
    assert code == 1 and b"no stored room named nope" in err
    code, _, err = await run_cli("export", "../x y", f"--data-dir={data}")
    assert code == 1 and b"bad room name" in err


async def test_newer_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(data / DB_FILENAME)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    code, _, err = await run_cli("serve", "--port=0", f"--data-dir={data}")
    assert code == 1
    assert b"schema version 99" in err and b"upgrade edrys-relay" in err
