"""Fixtures of the cluster tests: one redis-server and relay nodes, all children of the test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cluster.redisproc import Cluster, RedisProcess
from tests.interop.node_agent import NodeAgent


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def cluster(redis_server: RedisProcess, tmp_path: Path) -> AsyncIterator[Cluster]:
    nodes = Cluster(redis_server, tmp_path)
    try:
        yield nodes
    finally:
        await nodes.stop()


@pytest.fixture
async def node() -> AsyncIterator[NodeAgent]:
    agent = await NodeAgent.start()
    try:
        yield agent
    finally:
        await agent.close()
