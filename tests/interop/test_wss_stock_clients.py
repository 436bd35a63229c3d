"""Stock y-websocket and y-webrtc signaling clients (Node) over wss with a test CA: issue #6."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from edrys_relay.security.tokens import Role, TokenSigner
from tests.conftest import StartRelay, wait_for
from tests.interop.node_agent import require_node_modules
from tests.tlsca import make_test_pki

INTEROP = Path(__file__).parent
SECRET = "interop-secret-0123456789"


async def test_stock_clients_over_wss_with_tokens(start_relay: StartRelay, tmp_path: Path) -> None:
    require_node_modules()
    pki = make_test_pki(tmp_path)
    relay = await start_relay(
        tls_cert_file=str(pki.cert_file), tls_key_file=str(pki.key_file), auth_secrets=(SECRET,)
    )
    signer = TokenSigner((SECRET,))
    token = signer.mint("wss-room", Role.WRITE, now=int(time.time()), ttl_seconds=600)
    read_token = signer.mint("wss-room", Role.READ, now=int(time.time()), ttl_seconds=600)
    process = await asyncio.create_subprocess_exec(
        "node",
        str(INTEROP / "js" / "wss_clients.mjs"),
        f"wss://127.0.0.1:{relay.port}",
        "wss-room",
        token,
        read_token,
        cwd=INTEROP,
        env={**os.environ, "NODE_EXTRA_CA_CERTS": str(pki.ca_file)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert out.decode().strip() == "ok"
    assert relay.stats.refused_token == 0
    # the read-only client's answer to sync step 1 and its edit were both dropped
    await wait_for(lambda: relay.stats.read_only_dropped >= 2)
    assert relay.rooms.rooms["wss-room"].update_count == 1
