"""``edrys-relay doctor`` with its WebRTC check, and ``join --set`` over WebRTC, in a private
network namespace (conftest.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pycrdt

from edrys_relay.client import Classroom
from tests.conftest import wait_for

if TYPE_CHECKING:
    from .conftest import RelayProcess

ROOT = Path(__file__).resolve().parents[2]


def doctor(port: int) -> tuple[int, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    result = subprocess.run(
        [sys.executable, "-m", "edrys_relay", "doctor", f"127.0.0.1:{port}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def test_doctor_reports_a_working_data_channel(relay_server: RelayProcess) -> None:
    code, output = doctor(relay_server.port)
    assert code == 0, output
    assert "ok    WebRTC data channel: two peers on this machine synced a change" in output
    assert "WebRTC mode: signaling works, and a data channel opened between two peers" in output
    assert "peers on other networks also need a direct path or STUN/TURN" in output
    assert "recommendation: both modes work from here" in output


def test_doctor_without_a_usable_interface_says_it_cannot_check(relay_server: RelayProcess) -> None:
    """Loopback only (this namespace's veth removed): no ICE candidate, and doctor says so."""
    subprocess.run(["ip", "link", "delete", "rtc0"], check=True, timeout=30)
    code, output = doctor(relay_server.port)
    assert code == 0, output
    assert "skip  WebRTC data channel: not checked: this machine has no network interface" in output
    assert "WebRTC mode: signaling works; data channel not checked" in output


async def test_join_set_over_webrtc_reaches_a_peer(relay_server: RelayProcess) -> None:
    url = f"ws://127.0.0.1:{relay_server.port}"
    room = "CliRtc" + uuid.uuid4().hex[:8]
    async with Classroom(url, room, transport="webrtc") as peer:
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        args = ["join", url, room, "--transport", "webrtc", "--set", 'lamp={"on":true}']
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edrys_relay", *args, env=env, stdout=-1, stderr=-1
        )
        async with asyncio.timeout(60):
            stdout, stderr = await process.communicate()
        output = (stdout + stderr).decode()
        assert process.returncode == 0, output
        assert "wrote lamp into 'data' via webrtc" in output
        shared = peer.doc.get("data", type=pycrdt.Map)
        await wait_for(lambda: shared.to_py() == {"lamp": {"on": True}}, 10)
