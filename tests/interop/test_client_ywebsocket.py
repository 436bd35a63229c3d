"""Our Python client and a stock Node y-websocket 3.0.0 client in one room of our server.

Edits and awareness travel both ways; after a server restart both reconnect by themselves, resync
the (emptied) server, and edits travel both ways again. Needs node and ``npm ci`` in
tests/interop (skipped without, failed under CI=true).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pycrdt
import pytest

from edrys_relay.client import Classroom, ClientOptions
from edrys_relay.config import Settings
from edrys_relay.server.app import RelayServer
from tests.conftest import wait_for

HERE = Path(__file__).parent
SCRIPT = HERE / "ywebsocket_peer.mjs"
TIMEOUT = 15.0
NODE = {"user": {"name": "node"}}


class NodePeer:
    """A y-websocket client in a Node subprocess, with the last state it reported."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.map: dict[str, Any] = {}
        self.awareness: dict[int, Any] = {}
        self.events: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, url: str, room: str) -> NodePeer:
        node = shutil.which("node")
        if node is None or not (HERE / "node_modules" / "y-websocket").is_dir():
            message = "needs node and `npm ci` in tests/interop"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        process = await asyncio.create_subprocess_exec(
            node, str(SCRIPT), url, room, cwd=HERE, stdin=-1, stdout=-1
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            event = json.loads(line)
            self.events.append(event)
            if event["event"] == "map":
                self.map = event["value"]
            elif event["event"] == "awareness":
                self.awareness = {cid: state for cid, state in event["states"]}
            self.changed.set()

    def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")

    async def wait(self, condition: Callable[[NodePeer], bool], what: str) -> None:
        try:
            async with asyncio.timeout(TIMEOUT):
                while not condition(self):
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            pytest.fail(f"node peer: timed out waiting for {what}; events {self.events[-10:]}")

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.send(op="quit")
            try:
                async with asyncio.timeout(5):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self._reader.cancel()


async def test_python_and_node_clients_sync_through_our_server() -> None:
    # the memory store: "restarts (empty)" below, and no database in the working directory
    server = RelayServer(Settings(host="127.0.0.1", port=0, store="memory"))
    await server.__aenter__()
    port = server.port
    url = f"ws://127.0.0.1:{port}"
    room = "Room" + uuid.uuid4().hex[:8]
    node = await NodePeer.start(url, room)
    options = ClientOptions(backoff_max=0.5)
    try:
        async with Classroom(url, room, transport="websocket", options=options) as classroom:
            async with asyncio.timeout(TIMEOUT):
                await classroom.wait_synced()
            assert classroom.transport == "websocket"
            shared = classroom.doc.get("m", type=pycrdt.Map)

            # edits both ways
            shared["py"] = {"b": 1, "a": [1, "two"]}
            await node.wait(lambda n: n.map.get("py") == {"b": 1, "a": [1, "two"]}, "py edit")
            node.send(op="set", key="js", value={"z": {"y": 1}, "a": 2})
            await wait_for(lambda: shared.to_py().get("js") == {"z": {"y": 1}, "a": 2}, TIMEOUT)

            # awareness both ways
            classroom.set_presence({"user": {"name": "python"}})
            await node.wait(
                lambda n: n.awareness.get(classroom.client_id) == {"user": {"name": "python"}},
                "python presence",
            )
            node.send(op="presence", state=NODE)
            await wait_for(lambda: NODE in classroom.peers().values(), TIMEOUT)

            # the server restarts (empty): both reconnect and resync, edits flow again
            await server.shutdown()
            server = RelayServer(Settings(host="127.0.0.1", port=port, store="memory"))
            await server.__aenter__()
            transport = classroom._active
            assert transport is not None
            await wait_for(lambda: getattr(transport, "connections_made", 0) >= 2, TIMEOUT)
            shared["after"] = "python after restart"
            node.send(op="set", key="after_js", value="node after restart")
            await node.wait(lambda n: n.map.get("after") == "python after restart", "py edit 2")
            await wait_for(lambda: shared.to_py().get("after_js") == "node after restart", TIMEOUT)
            # the new server holds everything again, re-uploaded by the clients
            await wait_for(lambda: len(server.rooms.rooms) == 1, TIMEOUT)
            await node.wait(lambda n: {"python"} <= _names(n.awareness), "presence after restart")
            await wait_for(lambda: NODE in classroom.peers().values(), TIMEOUT)
    finally:
        await node.stop()
        await server.shutdown()


def _names(states: dict[int, Any]) -> set[str]:
    return {s["user"]["name"] for s in states.values() if isinstance(s, dict) and "user" in s}
