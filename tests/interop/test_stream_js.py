"""The ``/stream`` sequence of protocols.md §3 from Node's ``ws`` client (issue #4 test 1).

Runs ``js/stream_sequence.mjs`` with the packages pinned in ``package.json`` (``npm ci`` in
tests/interop) against an in-process server. Skipped when Node or node_modules is missing,
except under CI=true.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import StartRelay, wait_for

HERE = Path(__file__).parent
SCRIPT = HERE / "js" / "stream_sequence.mjs"


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "ws").is_dir():
        message = "needs node and `npm ci` in tests/interop"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return node


async def test_node_ws_client_speaks_the_stream_protocol(start_relay: StartRelay) -> None:
    node = _node()
    relay = await start_relay(stream_ping_interval=0.3)
    proc = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        f"ws://127.0.0.1:{relay.port}/stream",
        cwd=HERE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        stdout, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode()[-2000:]
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    assert result["ok"] is True
    assert len(result["checks"]) == 18, result["checks"]
    await wait_for(lambda: relay.streams.connection_count == 0)
