"""Issue 17's check: stock clients given only the URLs ``edrys-relay token --server`` prints.

A real ``edrys-relay serve`` with ``EDRYS_RELAY_SECRET`` set; the URLs come from the real
``token`` command; the clients are the pinned npm y-websocket and lib0 signaling client and a
plain WebSocket on the stream door, opened as Edrys-Lite opens them (protocols.md §2.1, §3.4,
§4.3): the room appended unencoded, a trailing ``/`` in the server URL, the ``userid`` kept.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from tests.interop.node_agent import require_node_modules
from tests.server.relayproc import RelayProcess, free_port, run_cli

INTEROP = Path(__file__).parent
SECRET = "path-token-secret-0123456789"
ROOM = "AbCdEfGh:Lab$1@x-_"  # ':' '$' '@' would be %-encoded if anything encoded the room
# An Edrys-Lite peer id: base64 public key (with '+', '/', '=') and a session suffix.
USERID = "BB7w+Qx/" + "A" * 79 + "=_x1Y2z3"


async def token_urls(server: str, *flags: str) -> dict[str, str]:
    code, out, err = await run_cli("token", ROOM, "--ttl", "10m", "--server", server, *flags)
    assert code == 0, err.decode()
    return dict(line.split(": ", 1) for line in out.decode().splitlines())


async def test_stock_clients_with_printed_token_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_node_modules()
    monkeypatch.setenv("EDRYS_RELAY_SECRET", SECRET)  # for the server and the token command
    relay = RelayProcess(free_port(), tmp_path / "data", "--store=memory", "--log-level=debug")
    await relay.start()
    try:
        server = f"http://127.0.0.1:{relay.port}"
        write, read, source = await asyncio.gather(
            token_urls(server), token_urls(server, "--read-only"), token_urls(server, "--source")
        )
        config = {
            "room": ROOM,
            "userid": USERID,
            "plain": relay.url,
            "healthz": f"{server}/healthz",
            "websocket": write["websocket"],
            "readOnly": read["websocket"],
            "signaling": write["signaling"],
            "stream": write["stream"],
            "sourceStream": source["stream"],
        }
        process = await asyncio.create_subprocess_exec(
            "node",
            str(INTEROP / "js" / "path_token_clients.mjs"),
            json.dumps(config),
            cwd=INTEROP,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(60):
            out, err = await process.communicate()
        assert process.returncode == 0, out.decode() + err.decode()
        assert out.decode().splitlines() == [
            "step websocket url syncs",
            "step read-only edit does not reach others",
            "step plain url refused",
            "step signaling url subscribes and publishes",
            "step stream urls relay a frame",
            "ok",
        ]
    finally:
        await relay.stop()
    log = (tmp_path / "server-1.log").read_text()
    # the room arrived (logged as its label) and the userid was kept beside the path token
    assert re.search(rf"open yjs room=#[0-9a-f]{{12}} userid={re.escape(USERID)} from", log)
    assert "GET /t/…/" in log  # websockets' debug lines were on, and redacted
    for urls in (write, read, source):
        for piece in urls["token"].split("."):
            if len(piece) > 8:
                assert piece not in log
