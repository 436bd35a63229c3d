"""Interop with the stock JavaScript clients (yjs 13 + y-websocket 3 in Node) — issue #2 test 2."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from edrys_relay.server.app import RelayServer
from tests.conftest import StartRelay, wait_for
from tests.interop.node_agent import NodeAgent

# Setup-like object: keys deliberately not alphabetical, nested at several levels (§2.9, §5.4).
SETUP = {
    "name": "Physics Lab",
    "meta": {"logo": "", "description": "Optics", "selfAssign": True, "defaultNumberOfRooms": 2},
    "modules": [
        {
            "url": "https://x.example/m.html",
            "config": {"z": 1, "a": [3, 2, 1]},
            "width": "full",
            "height": "tall",
        }
    ],
    "members": {"teacher": ["k1"], "student": []},
    "createdBy": "BB7w_x1Y2z3",
    "timestamp": 1764000000000,
    "communicationConfig": {"m": "Websocket", "w": "ws://localhost:1234"},
}


@pytest.fixture
async def node() -> AsyncIterator[NodeAgent]:
    agent = await NodeAgent.start()
    yield agent
    await agent.close()


def ws_url(server: RelayServer) -> str:
    return f"ws://127.0.0.1:{server.port}"


async def open_client(node: NodeAgent, server: RelayServer, name: str, room: str) -> None:
    await node.call(
        "open", name=name, url=ws_url(server), room=room, params={"userid": f"{name}_x1Y2z3"}
    )
    await node.until("synced", True, name=name)


async def test_two_providers_converge_on_concurrent_edits(
    relay: RelayServer, node: NodeAgent
) -> None:
    await open_client(node, relay, "a", "class1")
    await open_client(node, relay, "b", "class1")
    for i in range(20):  # interleaved concurrent edits from both sides
        await node.call("text_insert", name="a", index=0, text=f"a{i} ")
        await node.call("text_insert", name="b", text=f"b{i} ")
        await node.call("map_set_json", name="a", key=f"ka{i}", json=json.dumps({"v": i}))
        await node.call(
            "map_set_json", name="b", key="shared", json=json.dumps({"by": "b", "i": i})
        )
    tokens = [f"a{i} " for i in range(20)] + [f"b{i} " for i in range(20)]
    merged = await _converged(node, "text_get", ["a", "b"], lambda t: all(x in t for x in tokens))
    assert len(merged) == sum(map(len, tokens))
    await node.call("text_delete", name="b", index=0, length=3)
    await _converged(node, "text_get", ["a", "b"], lambda t: t == merged[3:])
    keys = await _converged(node, "map_keys", ["a", "b"], lambda k: len(k) == 21)
    assert set(keys) == {f"ka{i}" for i in range(20)} | {"shared"}
    assert await node.call("map_get_json", name="a", key="shared") == '{"by":"b","i":19}'


async def _converged(
    node: NodeAgent, cmd: str, names: list[str], done: Callable[[Any], bool]
) -> Any:
    """Wait until every client returns the same value and that value is ``done``."""
    async with asyncio.timeout(10):
        while True:
            values = [await node.call(cmd, name=n) for n in names]
            if all(v == values[0] for v in values) and done(values[0]):
                return values[0]
            await asyncio.sleep(0.05)


async def test_late_joiner_gets_everything_with_key_order_intact(
    relay: RelayServer, node: NodeAgent
) -> None:
    writer_json = json.dumps(SETUP, separators=(",", ":"))
    await open_client(node, relay, "owner", "lab42")
    await node.call("map_set_json", name="owner", key="config", json=writer_json)
    await node.call("text_insert", name="owner", text="hello from the owner")
    expected = await node.call("map_get_json", name="owner", key="config")
    assert expected == writer_json  # yjs keeps insertion order on the writer side
    await wait_for(lambda: relay.rooms.rooms["lab42"].update_count >= 2)
    await node.call("close", name="owner")
    await open_client(node, relay, "student", "lab42")
    got = await node.until("map_get_json", lambda v: v is not None, name="student", key="config")
    assert got == writer_json
    assert await node.call("text_get", name="student") == "hello from the owner"


async def test_awareness_appears_and_disappears(relay: RelayServer, node: NodeAgent) -> None:
    await open_client(node, relay, "a", "aw")
    await open_client(node, relay, "b", "aw")
    state = {"user": {"id": "a_x1Y2z3", "name": "Ada", "zeta": 1, "alpha": 2}}
    a_id = await node.call("awareness_set", name="a", state=state)
    states = await node.until(
        "awareness_states", lambda s: any(cid == a_id for cid, _ in s), name="b"
    )
    assert dict((cid, st) for cid, st in states)[a_id] == state
    await node.call("close", name="a")
    await node.until("awareness_states", lambda s: all(cid != a_id for cid, _ in s), name="b")


@pytest.mark.timeout(120)
async def test_lone_client_is_never_dropped_for_45_seconds(
    start_relay: StartRelay, node: NodeAgent
) -> None:
    relay = await start_relay()  # production timers: 30 s pings, 30 s awareness timeout
    await open_client(node, relay, "lone", "quiet")
    await node.call("awareness_set", name="lone", state={"user": {"name": "alone"}})
    await asyncio.sleep(45)
    stats = await node.call("stats", name="lone")
    assert stats == {"connects": 1, "closes": 0, "synced": True, "wsconnected": True}
