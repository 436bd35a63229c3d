"""Run ``python -m edrys_relay`` as a child process; tests kill only the processes they start."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    return env


async def run_cli(*args: str, timeout: float = 60.0) -> tuple[int, bytes, bytes]:
    """Run one ``edrys-relay`` command to completion: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edrys_relay",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(),
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out, err


class RelayProcess:
    """One ``edrys-relay serve`` child on a fixed port; restartable."""

    def __init__(self, port: int, data_dir: Path, *extra: str) -> None:
        self.port = port
        self.data_dir = data_dir
        self.extra = extra
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 20.0) -> None:
        """Start the server and return once its banner says it listens."""
        assert self.proc is None or self.proc.returncode is not None
        self.starts += 1
        log = (self.data_dir.parent / f"server-{self.starts}.log").open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edrys_relay",
            "serve",
            "--host=127.0.0.1",
            f"--port={self.port}",
            f"--data-dir={self.data_dir}",
            *self.extra,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env=child_env(),
        )
        log.close()
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while b"listening on" not in await self.proc.stdout.readline():
                assert self.proc.returncode is None, "server exited during start"

    async def signal(self, signum: int, timeout: float = 20.0) -> int:
        """Send ``signum`` to our child and wait for it to exit; returns its exit code."""
        assert self.proc is not None and self.proc.returncode is None
        self.proc.send_signal(signum)
        async with asyncio.timeout(timeout):
            await self.proc.communicate()
        assert self.proc.returncode is not None
        return self.proc.returncode

    async def kill(self) -> None:
        await self.signal(signal.SIGKILL)

    async def stop(self) -> None:
        """Make sure our child is gone (used in teardown)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
