"""``edrys-relay join`` and ``edrys-relay doctor --no-webrtc`` against an in-process server."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pycrdt

from edrys_relay.client import Classroom
from edrys_relay.server.app import RelayServer
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 20.0


async def run_cli(*args: str) -> asyncio.subprocess.Process:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONUNBUFFERED="1")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edrys_relay", *args, env=env, stdout=-1, stderr=-1
    )


async def finish(process: asyncio.subprocess.Process) -> tuple[int, str]:
    async with asyncio.timeout(TIMEOUT):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode() + stderr.decode()


async def read_until(process: asyncio.subprocess.Process, needle: str) -> str:
    assert process.stdout is not None
    seen = ""
    async with asyncio.timeout(TIMEOUT):
        while needle not in seen:
            line = await process.stdout.readline()
            assert line, f"process ended before printing {needle!r}:\n{seen}"
            seen += line.decode()
    return seen


async def test_join_set_writes_and_join_watch_prints(relay: RelayServer) -> None:
    url = f"ws://127.0.0.1:{relay.port}"
    room = "Cli" + uuid.uuid4().hex[:8]
    watcher = await run_cli("join", url, room, "--transport", "websocket")
    try:
        await read_until(watcher, "joined")
        writer = await run_cli(
            "join", url, room, "--transport", "websocket", "--set", 'lamp={"on":true}'
        )
        code, output = await finish(writer)
        assert code == 0, output
        assert "wrote lamp into 'data' via websocket" in output
        await read_until(watcher, 'doc data = {"lamp": {"on": true}}')
        async with Classroom(url, room, transport="websocket") as member:
            member.set_presence({"name": "member"})
            await read_until(watcher, '= {"name": "member"}')
            async with asyncio.timeout(TIMEOUT):
                await member.wait_synced()
            data = member.doc.get("data", type=pycrdt.Map)
            await wait_for(lambda: data.to_py() == {"lamp": {"on": True}}, TIMEOUT)
        await read_until(watcher, "left")
    finally:
        watcher.terminate()
        await watcher.wait()


async def test_join_rejects_bad_assignments(relay: RelayServer) -> None:
    process = await run_cli("join", f"ws://127.0.0.1:{relay.port}", "R", "--set", "novalue")
    code, output = await finish(process)
    assert code == 2 and "expected KEY=JSON" in output


async def test_doctor_without_webrtc(relay: RelayServer) -> None:
    process = await run_cli("doctor", f"ws://127.0.0.1:{relay.port}", "--no-webrtc")
    code, output = await finish(process)
    assert "ok    HTTP" in output
    assert "ok    Yjs door" in output
    assert "ok    signaling door" in output
    assert "Websocket mode: works" in output
    assert "WebRTC mode: signaling works; data channel not checked" in output
    assert (
        "recommendation: Websocket mode works; WebRTC signaling works, its data channel" in output
    )
    assert code == (0 if "FAIL" not in output else 1), output


async def test_doctor_on_a_dead_server() -> None:
    process = await run_cli("doctor", "ws://127.0.0.1:9", "--no-webrtc", "--timeout", "2")
    code, output = await finish(process)
    assert code == 1
    assert "recommendation: the server is not usable from here" in output
