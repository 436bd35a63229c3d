"""A throwaway redis-server for cluster tests: free port, AOF on (fsync always), temp dir."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.server.relayproc import RelayProcess, free_port


def require_redis_server() -> str:
    """The redis-server binary; fail under CI (scripts/setup installs it), else skip."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed (scripts/setup installs it with apt)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return binary


class RedisProcess:
    """One redis-server child with appendonly yes / appendfsync always; restartable."""

    def __init__(self, directory: Path) -> None:
        self.binary = require_redis_server()
        self.port = free_port()
        self.directory = directory
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "redis.log").open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            stdout=log,
            stderr=log,
        )
        log.close()
        client = self.client()
        try:
            async with asyncio.timeout(10):
                while True:
                    try:
                        if await client.ping():
                            return
                    except OSError:
                        pass
                    except RedisConnectionError:
                        pass  # not listening yet, or still reading its AOF (BusyLoadingError)
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    def client(self, **kwargs: Any) -> Redis:
        return Redis.from_url(self.url, **kwargs)

    async def kill(self) -> None:
        """SIGKILL: what the AOF holds is what survives."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


class Cluster:
    """Relay nodes (``edrys-relay serve --redis``) sharing one redis-server."""

    def __init__(self, redis: RedisProcess, base: Path) -> None:
        self.redis = redis
        self.base = base
        self.nodes: list[RelayProcess] = []

    def add(self, *extra: str) -> RelayProcess:
        index = len(self.nodes)
        data = self.base / f"node{index}" / "data"
        data.parent.mkdir(parents=True)
        node = RelayProcess(free_port(), data, f"--redis={self.redis.url}", *extra)
        self.nodes.append(node)
        return node

    async def start(self, count: int, *extra: str) -> list[RelayProcess]:
        nodes = [self.add(*extra) for _ in range(count)]
        await asyncio.gather(*(node.start() for node in nodes))
        return nodes

    async def stop(self) -> None:
        for node in self.nodes:
            await node.stop()
