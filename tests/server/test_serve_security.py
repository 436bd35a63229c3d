"""``edrys-relay serve`` with the security flags, as a real process (issue #6)."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import time
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from edrys_relay.security.tokens import Role, TokenSigner
from tests.server.test_cli import free_port, read_banner, start

SECRET = "process-secret-0123456789"


def test_serve_with_ssl_tokens_and_origins(tmp_path: Path) -> None:
    port = free_port()
    flags = [
        "--host=127.0.0.1",
        f"--port={port}",
        "--ssl",
        f"--data-dir={tmp_path}",
        "--allowed-origin",
        "https://school.example",
    ]
    process = start(*flags, env={"EDRYS_RELAY_SECRET": SECRET})
    try:
        banner = "\n".join(read_banner(process))
        assert f"websocket server URL   wss://127.0.0.1:{port}" in banner
        cert = tmp_path / "tls" / "server-cert.pem"
        context = ssl.create_default_context(cafile=str(cert))
        asyncio.run(_check_doors(port, context))
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}/healthz", timeout=5, context=context
        ) as reply:
            security = json.loads(reply.read())["security"]
        assert security["refused_token"] == 1 and security["refused_origin"] == 1
        first = cert.read_bytes()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    again = start(*flags, env={"EDRYS_RELAY_SECRET": SECRET})
    try:
        read_banner(again)
        assert cert.read_bytes() == first  # the self-signed certificate is reused
        again.send_signal(signal.SIGINT)
        assert again.wait(timeout=15) == 0
    finally:
        if again.poll() is None:
            again.kill()
            again.wait()


async def _check_doors(port: int, context: ssl.SSLContext) -> None:
    url = f"wss://127.0.0.1:{port}"
    token = TokenSigner((SECRET,)).mint("r", Role.WRITE, now=int(time.time()), ttl_seconds=60)
    async with connect(f"{url}/r?token={token}", ssl=context) as ws:
        assert (await ws.recv())[:2] == b"\x00\x00"  # sync step 1
    with pytest.raises(InvalidStatus) as info:
        await connect(f"{url}/r", ssl=context)
    assert info.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as info:
        await connect(f"{url}/r?token={token}", ssl=context, origin="https://evil.example")
    assert info.value.response.status_code == 403
