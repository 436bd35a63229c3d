"""HTTPS/WSS on the shared port (docs/threats.md A6): issue #6."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from edrys_relay.protocol import yjs
from edrys_relay.server import tls
from tests.conftest import StartRelay
from tests.tlsca import make_test_pki


def client_context(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


async def test_wss_with_a_certificate_from_a_test_ca(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    pki = make_test_pki(tmp_path)
    relay = await start_relay(tls_cert_file=str(pki.cert_file), tls_key_file=str(pki.key_file))
    url = f"wss://127.0.0.1:{relay.port}"
    update = yjs.encode_sync_update(b"\x00\x00")
    ctx = client_context(pki.ca_file)
    async with connect(f"{url}/room", ssl=ctx) as a, connect(f"{url}/room", ssl=ctx) as b:
        await a.recv()
        await b.recv()
        await a.send(yjs.encode_query_awareness())
        assert (await a.recv())[:1] == b"\x01"
        await b.send(update)
    async with connect(url, ssl=ctx) as signaling:
        await signaling.send('{"type":"ping"}')
        assert await signaling.recv() == '{"type":"pong"}'


async def test_self_signed_certificate_serves_localhost(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    cert, key = tls.ensure_self_signed(tmp_path)
    relay = await start_relay(tls_cert_file=str(cert), tls_key_file=str(key))
    async with connect(f"wss://localhost:{relay.port}/r", ssl=client_context(cert)) as ws:
        assert isinstance(yjs.decode_message(await ws.recv()), yjs.SyncStep1)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_plain_client_and_old_tls_are_refused(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    pki = make_test_pki(tmp_path)
    relay = await start_relay(tls_cert_file=str(pki.cert_file), tls_key_file=str(pki.key_file))
    with pytest.raises(Exception):  # noqa: B017 - any handshake failure will do
        async with connect(f"ws://127.0.0.1:{relay.port}/r", open_timeout=3):
            pass
    old = client_context(pki.ca_file)
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, OSError)):
        async with connect(f"wss://127.0.0.1:{relay.port}/r", ssl=old, open_timeout=3):
            pass


async def test_stalled_tls_handshake_is_cut_at_open_timeout(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    """docs/threats.md B13: a client that opens TCP and never speaks TLS does not hold a slot."""
    pki = make_test_pki(tmp_path)
    relay = await start_relay(
        tls_cert_file=str(pki.cert_file), tls_key_file=str(pki.key_file), open_timeout=0.5
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    async with asyncio.timeout(5):
        assert await reader.read() == b""
    writer.close()
    ctx = client_context(pki.ca_file)
    async with connect(f"wss://127.0.0.1:{relay.port}/r", ssl=ctx) as ws:
        assert isinstance(yjs.decode_message(await ws.recv()), yjs.SyncStep1)
