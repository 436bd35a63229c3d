"""The runnable examples of docs/client.md and README.md run against a fresh server."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pycrdt

from edrys_relay.client import Classroom
from edrys_relay.server.app import RelayServer

ROOT = Path(__file__).resolve().parents[2]


async def run_example(document: str, port: int, tmp_path: Path) -> str:
    """Run the first Python block of ``document`` against ``port``; return its output."""
    text = (ROOT / document).read_text()
    code = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert code is not None
    script = tmp_path / "example.py"
    script.write_text(code.group(1).replace("127.0.0.1:1234", f"127.0.0.1:{port}"))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), env=env, stdout=-1, stderr=-1
    )
    async with asyncio.timeout(30):
        stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


async def test_readme_example_returns_in_an_empty_room(relay: RelayServer, tmp_path: Path) -> None:
    """transport="auto" and a bare wait_synced(): the empty room counts as synced."""
    await run_example("README.md", relay.port, tmp_path)


async def test_docs_example_runs(relay: RelayServer, tmp_path: Path) -> None:
    assert "websocket" in await run_example("docs/client.md", relay.port, tmp_path)
    async with Classroom(f"ws://127.0.0.1:{relay.port}", "MyRoom", transport="websocket") as c:
        async with asyncio.timeout(10):
            await c.wait_synced()
        assert c.doc.get("lab", type=pycrdt.Map).to_py() == {"lamp": {"on": True}}
