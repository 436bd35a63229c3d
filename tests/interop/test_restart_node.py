"""Stock y-websocket clients across a server restart (issue #3 test 4), and ``export`` read
back by JavaScript ``Y.applyUpdate`` with every JSON value's key order intact (§2.9)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edrys_relay.server.app import RelayServer
from tests.conftest import StartRelay
from tests.interop.node_agent import HERE, NodeAgent, require_node_modules
from tests.interop.test_ywebsocket_node import SETUP
from tests.server.relayproc import run_cli

SETUP_JSON = json.dumps(SETUP, separators=(",", ":"))
WORDS = [f"w{i} " for i in range(60)]


@pytest.fixture
async def node() -> AsyncIterator[NodeAgent]:
    agent = await NodeAgent.start()
    yield agent
    await agent.close()


async def open_client(node: NodeAgent, server: RelayServer, name: str) -> None:
    url = f"ws://127.0.0.1:{server.port}"
    await node.call("open", name=name, url=url, room="lab", params={"userid": name})
    await node.until("synced", True, name=name)


async def write_lesson(node: NodeAgent) -> str:
    await node.call("map_set_json", name="teacher", key="setup", json=SETUP_JSON)
    for i, word in enumerate(WORDS):
        await node.call("text_insert", name="teacher", text=word)
        if i % 7 == 0:
            await node.call("text_delete", name="teacher", index=0, length=1)
    return str(await node.call("text_get", name="teacher"))


async def test_clients_see_everything_after_a_restart(
    start_relay: StartRelay, node: NodeAgent, tmp_path: Path
) -> None:
    # A small threshold: the restarted server serves a merged record plus a diff.
    storage = {"store": "sqlite", "data_dir": str(tmp_path), "compact_updates": 10}
    first = await start_relay(**storage)
    await open_client(node, first, "teacher")
    await open_client(node, first, "student")
    text = await write_lesson(node)
    await node.until("text_get", text, name="student")  # relayed, hence committed
    port = first.port
    await first.shutdown()
    for name in ("teacher", "student"):  # they got 1012; hold them back for now
        await node.call("disconnect", name=name)
    second = await start_relay(port=port, **storage)
    # A new client sees it all, from storage alone (nobody who holds the doc is connected).
    await open_client(node, second, "late")
    assert await node.call("text_get", name="late") == text
    assert await node.call("map_get_json", name="late", key="setup") == SETUP_JSON
    # The old clients come back to the same URL and converge without duplicated content.
    for name in ("teacher", "student"):
        await node.call("connect", name=name)
        await node.until("stats", lambda s: s["connects"] >= 2 and s["synced"], name=name)
    for name in ("late", "student", "teacher"):
        assert await node.call("text_get", name=name) == text  # no duplicated content
        assert await node.call("map_get_json", name=name, key="setup") == SETUP_JSON


async def test_export_is_accepted_by_js_apply_update(
    start_relay: StartRelay, node: NodeAgent, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    relay = await start_relay(store="sqlite", data_dir=str(data))
    await open_client(node, relay, "teacher")
    await open_client(node, relay, "student")
    text = await write_lesson(node)
    await node.until("text_get", text, name="student")
    await relay.shutdown()
    exported = tmp_path / "lab.bin"
    code, _, err = await run_cli("export", "lab", f"--output={exported}", f"--data-dir={data}")
    assert code == 0, err
    require_node_modules()
    proc = await asyncio.create_subprocess_exec(
        "node", "js/apply_update.mjs", str(exported), cwd=HERE, stdout=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(20):
        out, _ = await proc.communicate()
    assert proc.returncode == 0
    seen = json.loads(out)
    assert seen == {"text": text, "map": {"setup": SETUP_JSON}, "pending": False}


async def test_clients_restore_a_wiped_room_without_duplicates(
    start_relay: StartRelay, node: NodeAgent, tmp_path: Path
) -> None:
    """docs/threats.md F9/V18: the store is lost; clients that still hold the document bring it
    back as it was (same item IDs: the server is a pure relay), nothing is doubled."""
    first = await start_relay(store="sqlite", data_dir=str(tmp_path / "a"))
    await open_client(node, first, "teacher")
    await open_client(node, first, "student")
    text = await write_lesson(node)
    await node.until("text_get", text, name="student")
    port = first.port
    await first.shutdown()
    second = await start_relay(port=port, store="sqlite", data_dir=str(tmp_path / "empty"))
    for name in ("teacher", "student"):  # both reconnect on their own and resync
        await node.until("stats", lambda s: s["connects"] >= 2 and s["synced"], name=name)
    await open_client(node, second, "late")
    await node.until("text_get", text, name="late")
    for name in ("late", "student", "teacher"):
        assert await node.call("text_get", name=name) == text
        assert await node.call("map_get_json", name=name, key="setup") == SETUP_JSON
