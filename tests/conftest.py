"""Shared fixtures: an in-process server on a free port, and small client helpers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from edrys_relay.config import Settings
from edrys_relay.server.app import RelayServer

StartRelay = Callable[..., Awaitable[RelayServer]]


@pytest.fixture
async def start_relay() -> AsyncIterator[StartRelay]:
    """Start servers with settings overrides; all are shut down after the test."""
    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> RelayServer:
            # In-process tests use the memory store unless they ask for SQLite and a data dir.
            settings = Settings(**{"host": "127.0.0.1", "port": 0, "store": "memory", **overrides})
            return await stack.enter_async_context(RelayServer(settings))

        yield start


@pytest.fixture
async def relay(start_relay: StartRelay) -> RelayServer:
    return await start_relay()


def url(server: RelayServer, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


async def open_ws(server: RelayServer, path: str, **kwargs: Any) -> ClientConnection:
    return await connect(url(server, path), compression=None, **kwargs)


async def recv_until(
    ws: ClientConnection, predicate: Callable[[Any], bool], timeout: float = 5.0
) -> Any:
    """Receive messages until one satisfies ``predicate``; fail after ``timeout``."""
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.recv()
            if predicate(message):
                return message


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)
