"""Drive stock JavaScript Yjs clients (yjs + y-websocket or y-webrtc in Node) from pytest.

``NodeAgent`` runs ``js/yws_agent.mjs`` (or ``js/ywebrtc_agent.mjs``, with ``@roamhq/wrtc``)
and exchanges one JSON line per command. The npm packages come from
``tests/interop/package.json`` (installed with ``npm ci``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent


def require_node_modules() -> None:
    """Fail (not skip) when Node or the pinned npm packages are missing: CI must install them."""
    if shutil.which("node") is None:
        pytest.fail("node is not installed (see README: scripts/setup)")
    if not (HERE / "node_modules" / "y-websocket").is_dir():
        pytest.fail("npm packages missing: run `npm ci` in tests/interop (scripts/setup does)")


class NodeAgent:
    """A Node process holding named y-websocket clients."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._ids = itertools.count(1)

    @classmethod
    async def start(
        cls, script: str = "js/yws_agent.mjs", *args: str, env: dict[str, str] | None = None
    ) -> NodeAgent:
        """Start ``script`` with ``args``; ``env`` adds environment variables (e.g.
        NODE_EXTRA_CA_CERTS)."""
        require_node_modules()
        process = await asyncio.create_subprocess_exec(
            "node",
            script,
            *args,
            cwd=HERE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        return cls(process)

    async def call(self, cmd: str, **args: Any) -> Any:
        assert self._process.stdin is not None and self._process.stdout is not None
        request_id = next(self._ids)
        line = json.dumps({"id": request_id, "cmd": cmd, **args}) + "\n"
        self._process.stdin.write(line.encode())
        await self._process.stdin.drain()
        async with asyncio.timeout(10):
            reply = json.loads(await self._process.stdout.readline())
        assert reply["id"] == request_id, reply
        if "error" in reply:
            raise RuntimeError(f"node agent: {reply['error']}")
        return reply["ok"]

    async def until(self, cmd: str, expected: Any, timeout_s: float = 10, **args: Any) -> Any:
        """Poll ``cmd`` until it returns ``expected`` (or a predicate on it is true)."""
        value = None
        async with asyncio.timeout(timeout_s):
            while True:
                value = await self.call(cmd, **args)
                if expected(value) if callable(expected) else value == expected:
                    return value
                await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self._process.returncode is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                async with asyncio.timeout(5):
                    await self._process.wait()
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
