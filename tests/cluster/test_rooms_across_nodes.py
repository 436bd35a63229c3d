"""Stock y-websocket clients (Node) on different nodes of one Redis: one document, one room."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.cluster.redisproc import Cluster
from tests.interop.node_agent import NodeAgent
from tests.server.relayproc import RelayProcess

SETUP = {"zeta": 1, "alpha": {"y": [1, 2], "b": "x"}, "meta": {"name": "Lab", "id": "q1"}}


async def open_client(agent: NodeAgent, node: RelayProcess, name: str, room: str) -> None:
    await agent.call("open", name=name, url=node.url, room=room)
    await agent.until("synced", True, name=name, timeout_s=15)


async def converged(agent: NodeAgent, names: list[str], done: Any, timeout: float = 15) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            values = [await agent.call("text_get", name=n) for n in names]
            if all(v == values[0] for v in values) and done(values[0]):
                return values[0]
            await asyncio.sleep(0.05)


async def test_clients_on_two_nodes_converge_and_a_late_joiner_keeps_key_order(
    cluster: Cluster, node: NodeAgent
) -> None:
    a, b = await cluster.start(2)
    await open_client(node, a, "x", "lab")
    await open_client(node, b, "y", "lab")
    for i in range(20):
        await node.call("text_insert", name="x", index=0, text=f"x{i} ")
        await node.call("text_insert", name="y", index=0, text=f"y{i} ")
    text = await converged(node, ["x", "y"], lambda t: t.count("x") == 20 and t.count("y") == 20)
    writer_json = json.dumps(SETUP, separators=(",", ":"))
    await node.call("map_set_json", name="x", key="config", json=writer_json)
    await node.until("map_get_json", writer_json, name="y", key="config")
    await open_client(node, b, "late", "lab")
    assert await node.call("map_get_json", name="late", key="config") == writer_json
    assert await node.call("text_get", name="late") == text


async def test_awareness_crosses_nodes_and_a_dead_nodes_clients_go_before_the_timeout(
    cluster: Cluster, node: NodeAgent
) -> None:
    a, b = await cluster.start(2)
    await open_client(node, a, "x", "aw")
    state = {"user": {"id": "x1", "name": "Ada", "zeta": 1, "alpha": 2}}
    x_id = await node.call("awareness_set", name="x", state=state)
    # y's node loads the room only now: it asks the other nodes for their clients' states
    await open_client(node, b, "y", "aw")
    states = await node.until("awareness_states", lambda s: x_id in dict(s), name="y")
    assert dict(states)[x_id] == state
    y_id = await node.call("awareness_set", name="y", state={"user": {"name": "Bo"}})
    await node.until("awareness_states", lambda s: y_id in dict(s), name="x")
    await node.call("close", name="x")
    await node.until("awareness_states", lambda s: x_id not in dict(s), name="y")

    await open_client(node, a, "z", "aw")
    z_id = await node.call("awareness_set", name="z", state={"user": {"name": "Cy"}})
    await node.until("awareness_states", lambda s: z_id in dict(s), name="y")
    await a.kill()  # no removal is ever sent for z
    # Clients drop silent peers themselves after 30 s; the node heartbeat is faster.
    await node.until("awareness_states", lambda s: z_id not in dict(s), name="y", timeout_s=20)
    assert y_id in dict(await node.call("awareness_states", name="y"))
